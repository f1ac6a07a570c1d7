//! The loader's one error type: where (file, line, key path) and what, printed as
//! `docker-compose.yml:12: services.web.deploy.replicas: must be an integer, got "three"`.

use std::fmt;

/// A compose file the loader refuses, or a stack it cannot build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeError {
    /// The file as the caller named it, when the error belongs to one.
    pub file: Option<String>,
    /// The 1-based line in that file, when known.
    pub line: Option<usize>,
    /// The dotted key path (`services.web.deploy.replicas`), when the error belongs to a key.
    pub key: Option<String>,
    /// What is wrong, and where it helps, what to do instead.
    pub message: String,
}

impl ComposeError {
    /// An error that belongs to no file (a stack-wide problem).
    pub fn new(message: impl Into<String>) -> Self {
        ComposeError {
            file: None,
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error at `line` of `file`, on `key` (empty: no key).
    pub fn at(file: &str, line: usize, key: &str, message: impl Into<String>) -> Self {
        ComposeError {
            file: Some(file.to_string()),
            line: (line > 0).then_some(line),
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ComposeError {}

/// The loader's result type.
pub type Result<T> = std::result::Result<T, ComposeError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_key() {
        let e = ComposeError::at("stack.yml", 12, "services.web.image", "must be a string");
        assert_eq!(
            e.to_string(),
            "stack.yml:12: services.web.image: must be a string"
        );
        let e = ComposeError::at("stack.yml", 0, "", "top-level object must be a mapping");
        assert_eq!(
            e.to_string(),
            "stack.yml: top-level object must be a mapping"
        );
        assert_eq!(ComposeError::new("boom").to_string(), "boom");
    }
}
