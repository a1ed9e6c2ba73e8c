//! The benchmarks' error: what failed while measuring a figure. The binary
//! turns it into `anyhow` (cli/bench.rs); every text stays the one the
//! lower error (or the bench's own message) gives.

use crate::bgp::{BgpError, BirdError};
use crate::control::ControlError;
use crate::dataplane::DataplaneError;
use crate::lab::LabError;
use crate::ns::netns::NetnsError;
use crate::programs::MissingProgram;
use crate::runner::RunnerError;
use crate::traffic::TrafficError;

/// Why a bench did not print its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Options out of range, or a figure the bench could not measure.
    #[error("{0}")]
    Figure(String),
    /// What the bench was doing when `source` failed.
    #[error("{what}")]
    While {
        what: String,
        #[source]
        source: Box<BenchError>,
    },
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Runner(Box<RunnerError>),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Bird(#[from] BirdError),
    #[error(transparent)]
    Bgp(#[from] BgpError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Program(#[from] MissingProgram),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Addr(#[from] std::net::AddrParseError),
    #[error(transparent)]
    Net(#[from] ipnet::AddrParseError),
    #[error(transparent)]
    Int(#[from] std::num::ParseIntError),
    #[error(transparent)]
    Regex(#[from] regex::Error),
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

impl From<RunnerError> for BenchError {
    fn from(error: RunnerError) -> Self {
        BenchError::Runner(Box::new(error))
    }
}

impl BenchError {
    /// The error and its causes on one line, `outer: cause: cause`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }
}

/// `Err(BenchError::Figure(..))` from a format string.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::bench::BenchError::Figure(format!($($arg)*)))
    };
}

/// [`fail!`] unless the condition holds.
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail!($($arg)*);
        }
    };
}

/// What the bench was doing when a step failed.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, BenchError>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, BenchError>;
}

impl<T, E: Into<BenchError>> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, BenchError> {
        self.with_context(|| what)
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::While {
            what: what().into(),
            source: Box::new(source.into()),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T, BenchError> {
        self.with_context(|| what)
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, BenchError> {
        self.ok_or_else(|| BenchError::Figure(what().into()))
    }
}
