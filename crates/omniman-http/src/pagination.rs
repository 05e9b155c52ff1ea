//! `?cursor=&page_size=` and the `{"next","previous","results"}` envelope's links.

use actix_web::HttpRequest;
use chrono::DateTime;
use omniman_core::error::FieldErrors;
use omniman_core::page::{Cursor, DEFAULT_PAGE_SIZE, Direction, MAX_PAGE_SIZE, Page, PageRequest};
use utoipa::IntoParams;

use crate::body::Query;
use crate::error::ApiError;

/// The query parameters of a list without filters.
pub(crate) const PARAMS: &[&str] = &["cursor", "page_size"];

// Describes the query string to the document only: the handler reads the query itself so that
// every problem gets its own error code.
/// Pagination parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PageParams {
    /// Opaque cursor taken from a `next` or `previous` link.
    cursor: Option<String>,
    /// Rows per page: default 50, larger values are clamped to 100, below 1 is an error.
    page_size: Option<u32>,
}

/// Reads `page_size` (default 50, > 100 clamps, non-integer or < 1 is a field error).
pub(crate) fn page_size(query: &Query, errors: &mut FieldErrors) -> usize {
    match query.get("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
            _ if raw.trim().bytes().all(|b| b.is_ascii_digit()) && !raw.trim().is_empty() => {
                // All digits: zero, or too large for u64 (clamped).
                if raw.trim().trim_start_matches('0').is_empty() {
                    errors.add("page_size", "must be an integer of at least 1");
                    DEFAULT_PAGE_SIZE
                } else {
                    MAX_PAGE_SIZE
                }
            }
            _ => {
                errors.add("page_size", "must be an integer of at least 1");
                DEFAULT_PAGE_SIZE
            }
        },
    }
}

/// Reads `cursor`; one that is not ours is `invalid_cursor`.
pub(crate) fn cursor(query: &Query) -> Result<Option<Cursor>, ApiError> {
    query.get("cursor").map(|raw| Cursor::decode(raw).map_err(|_| ApiError::invalid_cursor())).transpose()
}

/// The page request of a list, once the caller has checked its other parameters.
pub(crate) fn request(query: &Query, limit: usize) -> Result<PageRequest, ApiError> {
    Ok(PageRequest::new(cursor(query)?, limit))
}

/// The URL of the same route with the same query, at `cursor`.
pub(crate) fn link(req: &HttpRequest, query: &Query, cursor: Option<Cursor>, base: Option<&str>) -> Option<String> {
    let cursor = cursor?;
    // Never from the request's `Host` or forwarded headers, which anyone can send: relative, or
    // absolute on the configured public URL.
    let base = base.unwrap_or_default().trim_end_matches('/');
    Some(format!("{base}{}?{}", req.path(), query.with("cursor", &cursor.encode())))
}

/// `(next, previous)` links of a page.
pub(crate) fn links<T>(
    req: &HttpRequest,
    query: &Query,
    page: &Page<T>,
    base: Option<&str>,
) -> (Option<String>, Option<String>) {
    (link(req, query, page.next, base), link(req, query, page.previous, base))
}

/// Pages through a short list the store returns whole (channels, events), in its order: the
/// cursor holds an offset.
pub(crate) fn slice<T>(items: Vec<T>, request: &PageRequest) -> Page<T> {
    let len = items.len();
    let start = request.cursor.map_or(0, |c| usize::try_from(c.id).unwrap_or(0).min(len));
    let end = (start + request.limit).min(len);
    let at = |offset: usize, direction| Cursor {
        created_at: DateTime::UNIX_EPOCH,
        id: i64::try_from(offset).unwrap_or(i64::MAX),
        direction,
    };
    let next = (end < len).then(|| at(end, Direction::Forward));
    let previous = (start > 0).then(|| at(start.saturating_sub(request.limit), Direction::Backward));
    let items = items.into_iter().skip(start).take(end - start).collect();
    Page { items, next, previous }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_by_offset() {
        let req = PageRequest::new(None, 2);
        let first = slice(vec![1, 2, 3, 4, 5], &req);
        assert_eq!(first.items, vec![1, 2]);
        assert!(first.previous.is_none());
        let second = slice(vec![1, 2, 3, 4, 5], &PageRequest::new(first.next, 2));
        assert_eq!(second.items, vec![3, 4]);
        let third = slice(vec![1, 2, 3, 4, 5], &PageRequest::new(second.next, 2));
        assert_eq!(third.items, vec![5]);
        assert!(third.next.is_none());
        let back = slice(vec![1, 2, 3, 4, 5], &PageRequest::new(third.previous, 2));
        assert_eq!(back.items, vec![3, 4]);
    }
}
