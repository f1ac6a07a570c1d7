//! `GET /distribution/{image}/json`: the CLI asks it to pin an image to its digest before
//! `service create/update` and `stack deploy`. shoal does not talk to registries, so it answers
//! with an error, which the CLI tolerates: it warns and lets each node resolve the image.

use super::body::DockerPath as Path;
use super::error::{ApiError, ApiResult};

/// `GET /distribution/{*rest}` where `rest` is `<image>/json`.
pub async fn inspect(Path(rest): Path<String>) -> ApiResult<()> {
    let Some(image) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    Err(ApiError::not_implemented(format!(
        "shoal does not query registries: the digest of {image} is not resolved here; each node resolves the image when it starts a task"
    )))
}
