use core::fmt;

/// Why a packet could not be parsed or emitted.
///
/// The `&'static str` names the header or field concerned, so that a message such as
/// "truncated Mobility Header" points at the culprit without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the named structure does.
    Truncated(&'static str),
    /// A length, type or value in the named structure is inconsistent or not allowed.
    Malformed(&'static str),
    /// The named checksum does not verify.
    Checksum(&'static str),
    /// The named structure is valid on the wire but not something this code handles.
    Unsupported(&'static str),
    /// The output buffer (or its headroom/tailroom) is too small for the named structure.
    NoRoom(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Checksum(what) => write!(f, "bad {what} checksum"),
            Error::Unsupported(what) => write!(f, "unsupported {what}"),
            Error::NoRoom(what) => write!(f, "no room in buffer for {what}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
