//! The bytes on the subjects: how a request's arguments and an answer are
//! encoded, and how a [`CallError`] travels as a NATS service error.
//!
//! A payload is one version byte ([`VERSION`]) followed by MessagePack
//! (`rmp-serde`, structs as maps keyed by field name). Keyed fields are what
//! lets a message evolve without breaking running peers: a field a peer does
//! not know is skipped, and a field it expects but does not get is `None`
//! when its type is an `Option` (or whatever `#[serde(default)]` says).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CallError, PanicMessage};

/// The format of every payload this version writes, and the only one it
/// reads. A later, incompatible format takes the next number, so that a
/// peer refuses it clearly instead of misreading it.
pub const VERSION: u8 = 1;

/// `value` as a payload.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    let mut out = vec![VERSION];
    rmp_serde::encode::write_named(&mut out, value).map_err(|error| error.to_string())?;
    Ok(Bytes::from(out))
}

/// A payload as a `T`, or why it is not one.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    match payload.split_first() {
        None => Err("empty payload".to_owned()),
        Some((&VERSION, rest)) => rmp_serde::from_slice(rest).map_err(|error| error.to_string()),
        Some((version, _)) => Err(format!(
            "wire format {version} is not understood (this peer reads format {VERSION})"
        )),
    }
}

/// Service error codes (HTTP-like, as the NATS services protocol suggests).
pub(crate) mod code {
    pub(crate) const BAD_REQUEST: usize = 400;
    pub(crate) const UNKNOWN_MESSAGE: usize = 404;
    pub(crate) const TIMEOUT: usize = 408;
    pub(crate) const DEADLOCK: usize = 409;
    pub(crate) const TOO_LARGE: usize = 413;
    pub(crate) const FULL: usize = 429;
    pub(crate) const PANICKED: usize = 500;
    pub(crate) const BAD_ANSWER: usize = 501;
    pub(crate) const START_FAILED: usize = 502;
    pub(crate) const CLOSED: usize = 503;
    pub(crate) const NO_REPLY: usize = 504;
}

/// The service error that carries `error` to the caller.
pub(crate) fn error_code(error: &CallError) -> (usize, String) {
    let code = match error {
        CallError::Timeout => code::TIMEOUT,
        CallError::Full => code::FULL,
        CallError::Panicked(message) => return (code::PANICKED, message.as_str().to_owned()),
        CallError::StartFailed(why) => return (code::START_FAILED, why.to_string()),
        CallError::SelfCall | CallError::Deadlock => code::DEADLOCK,
        CallError::NoReply => code::NO_REPLY,
        _ => code::CLOSED,
    };
    (code, error.to_string())
}

/// The caller's error for a service error.
pub(crate) fn call_error(code: usize, status: &str) -> CallError {
    match code {
        code::TIMEOUT => CallError::Timeout,
        code::FULL => CallError::Full,
        code::PANICKED => CallError::Panicked(PanicMessage::new(status)),
        code::START_FAILED => CallError::StartFailed(status.into()),
        code::DEADLOCK => CallError::Deadlock,
        code::NO_REPLY => CallError::NoReply,
        code::CLOSED => CallError::Transport("the remote server has stopped".into()),
        code::BAD_REQUEST => CallError::Transport(
            format!("the remote server could not read the request: {status}").into(),
        ),
        code::UNKNOWN_MESSAGE | code::TOO_LARGE => CallError::Transport(status.into()),
        _ => CallError::Transport(format!("service error {code}: {status}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Before {
        amount: u64,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct After {
        amount: u64,
        memo: Option<String>,
    }

    #[test]
    fn a_value_round_trips() {
        let bytes = encode(&(7u64, "x".to_owned())).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(
            decode::<(u64, String)>(&bytes).unwrap(),
            (7, "x".to_owned())
        );
    }

    #[test]
    fn a_field_added_on_either_side_keeps_peers_talking() {
        let old = encode(&Before { amount: 5 }).unwrap();
        assert_eq!(
            decode::<After>(&old).unwrap(),
            After {
                amount: 5,
                memo: None
            }
        );
        let new = encode(&After {
            amount: 5,
            memo: Some("rent".into()),
        })
        .unwrap();
        assert_eq!(decode::<Before>(&new).unwrap(), Before { amount: 5 });
    }

    #[test]
    fn other_versions_and_garbage_are_refused_with_a_reason() {
        assert!(decode::<u64>(&[]).unwrap_err().contains("empty"));
        assert!(decode::<u64>(&[2, 0]).unwrap_err().contains("format 2"));
        assert!(decode::<Before>(&[VERSION, 0xc1]).is_err());
    }

    #[test]
    fn every_call_error_survives_the_trip_or_says_it_is_remote() {
        for error in [
            CallError::Timeout,
            CallError::Full,
            CallError::Panicked(PanicMessage::new("boom")),
            CallError::StartFailed("no disk".into()),
            CallError::Deadlock,
            CallError::NoReply,
        ] {
            let (code, status) = error_code(&error);
            assert_eq!(call_error(code, &status), error);
        }
        let (code, status) = error_code(&CallError::Closed);
        assert!(matches!(call_error(code, &status), CallError::Transport(_)));
    }
}
