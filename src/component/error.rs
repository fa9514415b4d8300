//! The one error type at the component boundary (`check`, `build`, a task's
//! end). It holds what failed, in words, and keeps the lower error that caused
//! it as its `source()`, so a reader gets the whole chain ("cannot listen on
//! 0.0.0.0:80: Permission denied") without each layer gluing strings.

use std::error::Error as StdError;
use std::fmt;

type Cause = Box<dyn StdError + Send + Sync + 'static>;

pub struct Error {
    message: String,
    cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), cause: None }
    }

    /// `message`, caused by `cause` (kept whole, with its own causes).
    pub fn caused_by(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error { message: message.into(), cause: Some(cause.into()) }
    }

    /// This level's message, without the causes.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The message and every cause below it, joined by `: ` (each level once).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut next = self.cause.as_deref().map(|c| c as &(dyn StdError + 'static));
        while let Some(cause) = next {
            match cause.downcast_ref::<Error>() {
                Some(ours) => write!(f, ": {}", ours.message)?,
                None => write!(f, ": {cause}")?,
            }
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn StdError + 'static))
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

/// `.context("what was being done")` on any result whose error is a real error type.
pub trait Context<T> {
    fn context(self, message: impl Into<String>) -> Result<T>;
    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Into<Cause>> Context<T> for std::result::Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::caused_by(message, e))
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| Error::caused_by(message(), e))
    }
}

/// Any error with its causes, for a log line: some libraries' own text
/// ("error sending request") hides what went wrong (refused, certificate, timeout).
pub fn with_causes(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_kept_and_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let inner = Error::caused_by("cannot listen on 0.0.0.0:80", io);
        let outer = Error::caused_by("source `kong`", inner);
        assert_eq!(outer.to_string(), "source `kong`: cannot listen on 0.0.0.0:80: Permission denied");
        assert_eq!(outer.message(), "source `kong`");
        let below = outer.source().and_then(|e| e.source()).expect("two levels of causes");
        assert!(below.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn context_wraps_a_library_error() {
        let parsed: Result<u16> = "x".parse::<u16>().context("`port`");
        assert_eq!(parsed.unwrap_err().to_string(), "`port`: invalid digit found in string");
    }
}
