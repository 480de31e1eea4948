//! How a retried call ends: [`StopReason`], [`RetryError`], and
//! [`is_rejected`], which tells a breaker rejection inside an error.

use crate::call::Rejected;
use core::fmt;
use std::any::Any;
use std::error::Error;

/// Why retrying stopped after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The classifier said stop, or the error was a breaker rejection.
    NotRetryable,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The retry budget refused the retry.
    BudgetExhausted,
}

/// How a [`Retrier::run`](super::Retrier::run) failed.
#[derive(Debug)]
pub enum RetryError<E> {
    /// The breaker refused an attempt. Never retried.
    Rejected {
        /// The breaker's answer.
        rejected: Rejected,
        /// Attempts that reached the operation before the rejection.
        attempts: u32,
        /// The error of the last of them, if any.
        last_error: Option<E>,
    },
    /// The last attempt failed and no retry follows.
    Failed {
        /// Its error.
        error: E,
        /// Attempts made, this one included.
        attempts: u32,
        /// Why no retry follows.
        reason: StopReason,
    },
}

impl<E> RetryError<E> {
    /// Attempts that reached the operation.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Rejected { attempts, .. } | RetryError::Failed { attempts, .. } => {
                *attempts
            }
        }
    }

    /// The operation's last error, if an attempt reached it.
    pub fn into_error(self) -> Option<E> {
        match self {
            RetryError::Rejected { last_error, .. } => last_error,
            RetryError::Failed { error, .. } => Some(error),
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Rejected {
                rejected, attempts, ..
            } => write!(f, "{rejected} (after {attempts} attempts)"),
            RetryError::Failed {
                error,
                attempts,
                reason,
            } => write!(f, "{error} (after {attempts} attempts, {reason:?})"),
        }
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RetryError::Rejected { rejected, .. } => Some(rejected),
            RetryError::Failed { error, .. } => Some(error),
        }
    }
}

/// True when `e` is a breaker rejection: a [`Rejected`] itself, or a
/// `Box<dyn Error (+ Send + Sync)>` or `std::io::Error` whose source chain
/// holds one. [`Retrier::run`](super::Retrier::run) never retries such an error.
pub fn is_rejected<E: 'static>(e: &E) -> bool {
    fn chain(mut e: &(dyn Error + 'static)) -> bool {
        loop {
            if e.is::<Rejected>() {
                return true;
            }
            match e.source() {
                Some(s) => e = s,
                None => return false,
            }
        }
    }
    let any = e as &dyn Any;
    if any.is::<Rejected>() {
        return true;
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
        return chain(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error>>() {
        return chain(&**b);
    }
    if let Some(io) = any.downcast_ref::<std::io::Error>() {
        return io.get_ref().is_some_and(|inner| chain(inner));
    }
    false
}
