//! Stop strings over streamed text: emit text as it comes, but hold back a tail that
//! could be the start of a stop string, and cut the output where one appears (the stop
//! string itself is not emitted, as in OpenAI's API).

use crate::error::{param_error, Result};

/// Watches streamed text for stop strings (see the module docs).
#[derive(Debug)]
pub struct StopStrings {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopStrings {
    /// A watcher for `stops`; an empty stop string is an error.
    pub fn new(stops: &[String]) -> Result<StopStrings> {
        if stops.iter().any(String::is_empty) {
            return Err(param_error("stop", "a stop string must not be empty"));
        }
        Ok(StopStrings { stops: stops.to_vec(), pending: String::new(), stopped: false })
    }

    /// Whether a stop string has been reached.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Add newly decoded text; returns the text that is safe to show now and whether a
    /// stop string was reached (then nothing more is ever emitted).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.pending.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return (out, true);
        }
        let keep = self.held_back_len();
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// The text still held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest tail of `pending` that is a proper prefix of a stop string.
    fn held_back_len(&self) -> usize {
        let p = &self.pending;
        (1..=p.len())
            .rev()
            .filter(|&k| p.is_char_boundary(p.len() - k))
            .find(|&k| self.stops.iter().any(|s| s.len() > k && s.starts_with(&p[p.len() - k..])))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopStrings::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut out = String::new();
        for p in pieces {
            let (text, stop) = s.push(p);
            out.push_str(&text);
            if stop {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn cuts_before_a_stop_string_split_across_pieces() {
        assert_eq!(run(&["\n\n"], &["Hello", " world\n", "\nmore"]), ("Hello world".into(), true));
        assert_eq!(run(&["END"], &["abcE", "N", "Dxyz"]), ("abc".into(), true));
        assert_eq!(run(&["x", "bc"], &["abcx"]), ("a".into(), true), "the earliest stop wins");
    }

    #[test]
    fn holds_back_only_possible_prefixes_and_flushes_at_the_end() {
        let mut s = StopStrings::new(&["STOP".to_string()]).unwrap();
        assert_eq!(s.push("abcST"), ("abc".to_string(), false));
        assert_eq!(s.push("x"), ("STx".to_string(), false));
        assert_eq!(s.push("S"), (String::new(), false));
        assert_eq!(s.finish(), "S");
        assert_eq!(run(&["é!"], &["café", "s"]), ("cafés".into(), false), "multi-byte text");
    }

    #[test]
    fn an_empty_stop_string_is_an_error() {
        assert!(StopStrings::new(&["".to_string()]).unwrap_err().to_string().contains("stop"));
    }
}
