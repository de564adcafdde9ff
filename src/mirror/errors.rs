//! Cache errors as HTTP answers: the one place a failure gets its status.

use crate::cache::{Error, Failure};
use crate::http::Response;

/// The HTTP status that reports a cache error to a client: 404 when the path is
/// refused or every source said not found; 508 when every source that failed found a
/// loop (a chain of caches leading back to one the request passed through); 504 when
/// every other failure was a timeout, or when only a stored copy would do and there is
/// none (`only-if-cached`); 502 for the remaining upstream failures and broken
/// downloads; 500 for local trouble.
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::InvalidPath { .. } => 404,
        Error::Upstream { .. } if e.nowhere() => 404,
        Error::Upstream { .. } if e.looped() => 508,
        Error::NotStored { .. } => 504,
        Error::Upstream { attempts, .. } => {
            // Sources not asked (cooling down) and those without the file say nothing
            // about whether the others were slow or broken.
            let mut failed = attempts
                .iter()
                .filter(|a| !matches!(a.failure, Failure::NotFound(_) | Failure::CoolingDown(_)));
            let first = failed.next();
            if first.is_some_and(|a| a.failure == Failure::Timeout)
                && failed.all(|a| a.failure == Failure::Timeout)
            {
                504
            } else {
                502
            }
        }
        Error::Interrupted { .. } => 502,
        _ => 500,
    }
}

/// The one place cache errors become responses: a short plain-text body naming what
/// each source answered (refused paths get the bare status line).
pub(super) fn error_response(e: &Error) -> Response {
    let status = status_of(e);
    let phrase = crate::http::reason_phrase(status);
    match e {
        Error::InvalidPath { .. } => Response::error(status),
        _ => Response::text(status, format!("{status} {phrase}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::error::tests::upstream;

    #[test]
    fn failures_become_their_status() {
        use Failure::*;
        assert_eq!(status_of(&upstream(&[NotFound(404), NotFound(410)])), 404);
        assert_eq!(status_of(&upstream(&[NotFound(404), Timeout])), 504);
        assert_eq!(status_of(&upstream(&[Timeout, Status(500)])), 502);
        assert_eq!(
            status_of(&upstream(&[Connect("connection refused".into())])),
            502
        );
        assert_eq!(status_of(&upstream(&[])), 502);
        let cooling = || CoolingDown("timed out".into());
        assert_eq!(status_of(&upstream(&[NotFound(404), cooling()])), 404);
        assert_eq!(status_of(&upstream(&[Timeout, cooling()])), 504);
        assert_eq!(status_of(&upstream(&[Older, NotFound(404)])), 502);
        assert_eq!(status_of(&upstream(&[Status(508), NotFound(404)])), 508);
        assert_eq!(status_of(&upstream(&[Status(508), Status(500)])), 502);
        let not_stored = Error::NotStored {
            path: "/d/x".into(),
        };
        assert_eq!(status_of(&not_stored), 504);
        let resp = error_response(&upstream(&[NotFound(404)]));
        assert_eq!(resp.status(), 404);
        assert!(resp.header("X-Cache").is_none());
        let text = String::from_utf8(resp.into_bytes().unwrap()).unwrap();
        assert_eq!(
            text,
            "404 Not Found: no source could provide /distfiles/x: http://a/distfiles/x 404 not found\n"
        );
    }
}
