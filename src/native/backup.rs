//! `GET /shoal/v1/backup`: a backup of the store as of now (see `shoal_store::backup`), streamed
//! as it was written. It holds every secret and the root CA key: the route is as protected as
//! the API socket it is served on.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::wire::code;
use super::{NativeError, NativeState};

/// The response header carrying the store revision of the backup.
pub const REVISION_HEADER: &str = "x-shoal-backup-revision";

/// `GET /shoal/v1/backup`.
pub async fn backup<S: NativeState>(State(state): State<S>) -> Result<Response, NativeError> {
    let store = state.store().await?;
    let internal =
        |e: String| NativeError::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, e);
    // Written to a file of this process's own (mode 0600), then streamed from it; the file is
    // unlinked once open, so nothing is left behind whatever happens to the request.
    let path = std::env::temp_dir().join(format!(
        "shoal-backup-{}-{}",
        std::process::id(),
        shoal_store::model::new_id()
    ));
    let written = async {
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| internal(format!("creating {}: {e}", path.display())))?
        };
        let header = store
            .backup(&mut file)
            .await
            .map_err(|e| NativeError::from_store(&e))?;
        file.sync_all().map_err(|e| internal(e.to_string()))?;
        Ok::<_, NativeError>(header)
    }
    .await;
    let opened = tokio::fs::File::open(&path).await;
    let _ = std::fs::remove_file(&path);
    let header = written?;
    let file = opened.map_err(|e| internal(e.to_string()))?;
    let chunks = futures::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 1 << 16];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
    .boxed();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(REVISION_HEADER, header.revision.to_string())
        .body(Body::from_stream(chunks))
        .map_err(|e| internal(e.to_string()))
}
