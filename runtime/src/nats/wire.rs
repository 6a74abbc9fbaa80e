//! The bytes on the subjects: how a request's arguments and an answer are
//! encoded, the headers that carry a request's options, the subjects, and
//! how a [`CallError`] travels as a NATS service error.
//!
//! A payload is one version byte ([`VERSION`]) followed by MessagePack
//! (`rmp-serde`, structs as maps keyed by field name). Keyed fields are what
//! lets a message evolve without breaking running peers: a field a peer does
//! not know is skipped, and a field it expects but does not get is `None`
//! when its type is an `Option` (or whatever `#[serde(default)]` says).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;

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

/// Header: the call's remaining time, in milliseconds.
pub(crate) const TIMEOUT_HEADER: &str = "Patchboard-Timeout-Ms";
/// Header: the call's priority level.
pub(crate) const PRIORITY_HEADER: &str = "Patchboard-Priority";
/// Header of the NATS services protocol: the error's code.
pub(crate) const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";
/// Header of the NATS services protocol: the error's text.
pub(crate) const ERROR_HEADER: &str = "Nats-Service-Error";

/// Header: a one-way message whose sender wants to know it was taken
/// (a confirmed cast): served in order with the other one-way messages,
/// and answered, with an empty payload, once it is in the server's
/// mailbox.
pub(crate) const ONE_WAY_HEADER: &str = "Patchboard-One-Way";

/// Longest error text carried in the [`ERROR_HEADER`] (the NATS tooling's
/// summary); the whole text travels in the payload.
const SUMMARY: usize = 200;

/// A message that nobody answers with a value: no reply subject, or
/// marked one-way (answered only to say it was taken).
pub(crate) fn is_one_way(message: &async_nats::Message) -> bool {
    message.reply.is_none() || header(message, ONE_WAY_HEADER).is_some()
}

/// `Ok` for a name NATS can carry as one token of a subject and as a
/// service name: letters, digits, `-` and `_`, as the NATS services
/// protocol asks.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid service name (letters, digits, `-` and `_`)"
        ))
    }
}

/// The service error carrying `text`, in at most `limit` bytes of headers
/// and payload (the NATS server's `max_payload`): the code and a short,
/// header-safe summary in the headers of the NATS services protocol, the
/// whole text in the payload. (A header value cannot hold a line break,
/// and NATS limits a header's size; a payload holds any bytes.)
pub(crate) fn error_message(code: usize, text: &str, limit: usize) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(ERROR_CODE_HEADER, code.to_string().as_str());
    headers.insert(ERROR_HEADER, summary(text).as_str());
    let room = limit.saturating_sub(headers_len(&headers));
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (headers, Bytes::copy_from_slice(&text.as_bytes()[..end]))
}

/// The text of a service error answer: its payload (the whole text), or
/// the header's summary from a peer that sends none.
pub(crate) fn error_text(message: &async_nats::Message) -> String {
    if message.payload.is_empty() {
        header(message, ERROR_HEADER).unwrap_or_default().to_owned()
    } else {
        String::from_utf8_lossy(&message.payload).into_owned()
    }
}

/// `text` as a header value: one line of printable ASCII, at most
/// [`SUMMARY`] bytes.
pub(crate) fn summary(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' })
        .take(SUMMARY)
        .collect();
    if text.chars().count() > SUMMARY {
        out.push_str("...");
    }
    out
}

/// The bytes `headers` take in a NATS message (`NATS/1.0\r\n`, a
/// `name: value\r\n` line each, a blank line): what NATS counts against
/// `max_payload` besides the payload.
pub(crate) fn headers_len(headers: &HeaderMap) -> usize {
    if headers.is_empty() {
        return 0;
    }
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|value| name.len() + 2 + value.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

/// The value of header `name` of `message`, if it has one.
pub(crate) fn header<'m>(message: &'m async_nats::Message, name: &str) -> Option<&'m str> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(name))
        .map(|value| value.as_str())
}

/// The headers of a request: its deadline (the time left, if it has one)
/// and its priority level (if not 0).
pub(crate) fn request_headers(timeout: Option<Duration>, level: u8) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(timeout) = timeout {
        headers.insert(TIMEOUT_HEADER, timeout.as_millis().to_string().as_str());
    }
    if level > 0 {
        headers.insert(PRIORITY_HEADER, level.to_string().as_str());
    }
    headers
}

/// A request's options as its headers carry them: the priority level and
/// the deadline (time left), each if present and readable.
pub(crate) fn request_options(message: &async_nats::Message) -> (Option<u8>, Option<Duration>) {
    let level = header(message, PRIORITY_HEADER).and_then(|level| level.parse().ok());
    let timeout = header(message, TIMEOUT_HEADER)
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    (level, timeout)
}

/// The subject of `message` of the service `name`: `bank.deposit`.
pub(crate) fn subject(name: &str, message: &str) -> String {
    format!("{name}.{message}")
}

/// Encodes a value for the wire. Generated code only.
#[doc(hidden)]
pub type Encode<T> = fn(&T) -> Result<Bytes, String>;

/// Decodes a value from the wire. Generated code only.
#[doc(hidden)]
pub type Decode<T> = fn(&[u8]) -> Result<T, String>;

/// Picks the wire functions of a type: serde's if it implements serde's
/// traits ([`ViaSerde`], found first by method resolution), else stand-ins
/// ([`NotWire`]) that are never run, because the `Wire` check that
/// generated code makes on every type has then already failed the build.
/// This keeps a type that cannot cross the wire at one error, on the
/// type. Generated code only.
#[doc(hidden)]
pub struct WireTag<T>(std::marker::PhantomData<fn() -> T>);

impl<T> WireTag<T> {
    /// The tag of `T`.
    pub fn new() -> Self {
        WireTag(std::marker::PhantomData)
    }
}

impl<T> Default for WireTag<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for WireTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireTag")
    }
}

/// [`WireTag`]'s serde functions. Generated code only.
#[doc(hidden)]
pub trait ViaSerde<T> {
    /// Encodes with serde.
    fn encoder(&self) -> Encode<T>;
    /// Decodes with serde.
    fn decoder(&self) -> Decode<T>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for WireTag<T> {
    fn encoder(&self) -> Encode<T> {
        |value| encode(value)
    }
    fn decoder(&self) -> Decode<T> {
        |bytes| decode(bytes)
    }
}

/// [`WireTag`]'s stand-ins. Generated code only.
#[doc(hidden)]
pub trait NotWire<T> {
    /// Never run.
    fn encoder(&self) -> Encode<T>;
    /// Never run.
    fn decoder(&self) -> Decode<T>;
}

impl<T> NotWire<T> for &WireTag<T> {
    fn encoder(&self) -> Encode<T> {
        |_| Err("this type does not implement serde's `Serialize`".to_owned())
    }
    fn decoder(&self) -> Decode<T> {
        |_| Err("this type does not implement serde's `Deserialize`".to_owned())
    }
}


/// A request being answered. Generated code only.
#[doc(hidden)]
pub type Answering = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The answer to a remote request. Generated code only.
#[doc(hidden)]
#[derive(Debug)]
pub enum Response {
    /// The encoded answer.
    Value(Bytes),
    /// A service error: code and text.
    Error(usize, String),
    /// No answer: the caller does not wait.
    None,
}

impl Response {
    pub(crate) fn error(error: &CallError) -> Self {
        let (code, status) = error_code(error);
        Response::Error(code, status)
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

    /// A message as NATS delivers it, with `headers`.
    fn message(headers: &[(&str, &str)]) -> async_nats::Message {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, *value);
        }
        async_nats::Message {
            subject: "bank.deposit".into(),
            reply: None,
            payload: Bytes::new(),
            headers: (!headers.is_empty()).then_some(map),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn a_request_s_options_round_trip_through_its_headers() {
        let headers = request_headers(Some(Duration::from_millis(1_500)), 3);
        let sent: Vec<(&str, &str)> = [TIMEOUT_HEADER, PRIORITY_HEADER]
            .into_iter()
            .map(|name| (name, headers.get(name).unwrap().as_str()))
            .collect();
        assert_eq!(
            request_options(&message(&sent)),
            (Some(3), Some(Duration::from_millis(1_500)))
        );
        // Nothing to say: no headers at all.
        assert!(request_headers(None, 0).is_empty());
        assert_eq!(request_options(&message(&[])), (None, None));
        // Unreadable values are ignored, not guessed.
        assert_eq!(
            request_options(&message(&[(PRIORITY_HEADER, "high"), (TIMEOUT_HEADER, "-1")])),
            (None, None)
        );
    }

    #[test]
    fn a_header_is_found_by_name_and_a_subject_joins_service_and_message() {
        let with = message(&[(ERROR_CODE_HEADER, "500")]);
        assert_eq!(header(&with, ERROR_CODE_HEADER), Some("500"));
        assert_eq!(header(&with, ERROR_HEADER), None);
        assert_eq!(header(&message(&[]), ERROR_CODE_HEADER), None);
        assert_eq!(subject("bank", "deposit"), "bank.deposit");
    }

    #[test]
    fn the_wire_tag_picks_serde_and_its_stand_ins_refuse() {
        let tag = WireTag::<u64>::new();
        let bytes = tag.encoder()(&7).unwrap();
        assert_eq!(tag.decoder()(&bytes), Ok(7));
        // The stand-ins, never run by generated code, say why.
        let stand_in = <&WireTag<u64> as NotWire<u64>>::encoder(&&tag);
        assert!(stand_in(&7).unwrap_err().contains("Serialize"));
    }

    #[test]
    fn a_call_error_is_answered_as_a_service_error() {
        match Response::error(&CallError::Timeout) {
            Response::Error(code, _) => assert_eq!(code, code::TIMEOUT),
            other => panic!("{other:?}"),
        }
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
