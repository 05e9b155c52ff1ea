//! Keyset pagination with opaque cursors, shared by every backend.
//!
//! Lists are ordered newest first by `(created_at, id)`. A backend fetches `limit + 1` rows past
//! the cursor in the cursor's direction and hands them to [`Page::from_rows`], which decides
//! `next` and `previous`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Which way a cursor pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Older rows: `(created_at, id) < position`, newest first.
    Forward,
    /// Newer rows: `(created_at, id) > position`, fetched oldest first.
    Backward,
}

/// A position in a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// `created_at` of the row at the edge.
    pub created_at: DateTime<Utc>,
    /// `id` of the row at the edge.
    pub id: i64,
    /// Paging direction.
    pub direction: Direction,
}

/// A cursor that is not one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    /// The opaque text form.
    ///
    /// ```
    /// use omniman_core::page::{Cursor, Direction};
    /// let c = Cursor { created_at: chrono::Utc::now(), id: 42, direction: Direction::Forward };
    /// assert_eq!(Cursor::decode(&c.encode()).unwrap().id, 42);
    /// assert!(Cursor::decode("garbage").is_err());
    /// ```
    pub fn encode(&self) -> String {
        let dir = match self.direction {
            Direction::Forward => 'f',
            Direction::Backward => 'b',
        };
        URL_SAFE_NO_PAD.encode(format!("{dir}:{}:{}", self.created_at.timestamp_micros(), self.id))
    }

    /// Parses the opaque text form.
    pub fn decode(text: &str) -> Result<Cursor, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let mut parts = text.split(':');
        let direction = match parts.next() {
            Some("f") => Direction::Forward,
            Some("b") => Direction::Backward,
            _ => return Err(InvalidCursor),
        };
        let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or(InvalidCursor)?;
        let id: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or(InvalidCursor)?;
        if parts.next().is_some() {
            return Err(InvalidCursor);
        }
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?;
        Ok(Cursor { created_at, id, direction })
    }
}

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size; larger requests are clamped.
pub const MAX_PAGE_SIZE: usize = 100;

/// Which page to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Where to start (`None` = the newest rows).
    pub cursor: Option<Cursor>,
    /// Rows per page (1..=100).
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> PageRequest {
        PageRequest { cursor: None, limit: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// A request with the size clamped to `1..=100`.
    pub fn new(cursor: Option<Cursor>, limit: usize) -> PageRequest {
        PageRequest { cursor, limit: limit.clamp(1, MAX_PAGE_SIZE) }
    }

    /// How many rows a backend fetches: one more than a page, to know whether there are more.
    pub fn fetch_limit(&self) -> usize {
        self.limit + 1
    }

    /// The paging direction.
    pub fn direction(&self) -> Direction {
        self.cursor.map_or(Direction::Forward, |c| c.direction)
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// Rows, newest first.
    pub items: Vec<T>,
    /// Cursor of the following (older) page.
    pub next: Option<Cursor>,
    /// Cursor of the preceding (newer) page.
    pub previous: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in the request's direction (newest first
    /// when paging forward, oldest first when paging backward). `key` gives a row's position.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> (DateTime<Utc>, i64)) -> Page<T> {
        let more = rows.len() > request.limit;
        rows.truncate(request.limit);
        let cursor_at = |row: Option<&T>, direction| {
            row.map(|r| {
                let (created_at, id) = key(r);
                Cursor { created_at, id, direction }
            })
        };
        match request.direction() {
            Direction::Forward => {
                let next = if more { cursor_at(rows.last(), Direction::Forward) } else { None };
                let previous = request.cursor.and_then(|_| cursor_at(rows.first(), Direction::Backward));
                Page { items: rows, next, previous }
            }
            Direction::Backward => {
                rows.reverse();
                let previous = if more { cursor_at(rows.first(), Direction::Backward) } else { None };
                let next = cursor_at(rows.last(), Direction::Forward)
                    .or(request.cursor.map(|c| Cursor { direction: Direction::Forward, ..c }));
                Page { items: rows, next, previous }
            }
        }
    }

    /// Maps the rows, keeping the cursors.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next, previous: self.previous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: i64) -> (DateTime<Utc>, i64) {
        (DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap(), i)
    }

    /// Simulates a backend over ids 1..=n.
    fn fetch(n: i64, req: &PageRequest) -> Page<i64> {
        let all: Vec<i64> = (1..=n).collect();
        let rows: Vec<i64> = match req.cursor {
            None => all.iter().rev().copied().take(req.fetch_limit()).collect(),
            Some(c) if c.direction == Direction::Forward => {
                all.iter().rev().copied().filter(|&i| at(i) < (c.created_at, c.id)).take(req.fetch_limit()).collect()
            }
            Some(c) => all.iter().copied().filter(|&i| at(i) > (c.created_at, c.id)).take(req.fetch_limit()).collect(),
        };
        Page::from_rows(rows, req, |&i| at(i))
    }

    #[test]
    fn pages_forward_and_back() {
        let first = fetch(5, &PageRequest::new(None, 2));
        assert_eq!(first.items, vec![5, 4]);
        assert!(first.previous.is_none());
        let second = fetch(5, &PageRequest::new(first.next, 2));
        assert_eq!(second.items, vec![3, 2]);
        let third = fetch(5, &PageRequest::new(second.next, 2));
        assert_eq!(third.items, vec![1]);
        assert!(third.next.is_none());
        let back = fetch(5, &PageRequest::new(third.previous, 2));
        assert_eq!(back.items, vec![3, 2]);
        let back = fetch(5, &PageRequest::new(back.previous, 2));
        assert_eq!(back.items, vec![5, 4]);
        assert!(back.previous.is_none());
    }

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = Cursor { created_at: at(3).0, id: 3, direction: Direction::Backward };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("x:1:2"),
            &URL_SAFE_NO_PAD.encode("f:1"),
            &URL_SAFE_NO_PAD.encode("f:a:1"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(PageRequest::new(None, 0).limit, 1);
        assert_eq!(PageRequest::new(None, 500).limit, 100);
    }
}
