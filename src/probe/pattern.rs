//! Path patterns with `{name}` parameters, matched without allocating.

use std::ops::Range;

/// A path pattern with `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    segments: Vec<Segment>,
    /// The literal text every matching path starts with (`/api/accounts/`
    /// for `/api/accounts/{id}/addressbook`): most paths are turned away
    /// by this compare alone, before any segment is looked at.
    prefix: String,
    /// The literal text every matching path ends with (`/addressbook`), or
    /// empty when the last segment is a parameter.
    suffix: String,
    /// The segments `prefix` and `suffix` do not cover: `lead..end`.
    lead: usize,
    end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathPattern {
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err("must start with `/`".into());
        }
        let mut segments = Vec::new();
        for seg in pattern[1..].split('/') {
            if let Some(inner) = seg.strip_prefix('{') {
                let name = inner
                    .strip_suffix('}')
                    .ok_or_else(|| format!("segment `{seg}` opens `{{` without closing it"))?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "parameter `{seg}` must be `{{name}}` with letters, digits or `_`"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(p) if p == name))
                {
                    return Err(format!("parameter `{name}` appears twice"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if seg.contains('{') || seg.contains('}') {
                return Err(format!(
                    "segment `{seg}`: a parameter must be a whole segment"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        let mut prefix = String::from("/");
        for seg in &segments {
            match seg {
                Segment::Literal(l) => {
                    prefix.push_str(l);
                    prefix.push('/');
                }
                Segment::Param(_) => break,
            }
        }
        if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            // All literal: the whole path, without the last `/` pushed.
            prefix.pop();
        }
        let lead = segments
            .iter()
            .take_while(|s| matches!(s, Segment::Literal(_)))
            .count();
        let (suffix, end) = match segments.last() {
            // A trailing literal after a parameter.
            Some(Segment::Literal(l)) if lead < segments.len() => {
                (format!("/{l}"), segments.len() - 1)
            }
            _ => (String::new(), segments.len()),
        };
        Ok(Self {
            segments,
            prefix,
            suffix,
            lead,
            end,
        })
    }

    /// The index (among the segments) of parameter `name`, if the pattern
    /// has it: what [`matches`](Self::matches) is asked to capture.
    pub(crate) fn param(&self, name: &str) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| matches!(s, Segment::Param(p) if p == name))
    }

    /// The pattern as written (`/api/accounts/{id}`), for logs.
    pub(crate) fn to_pattern_string(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(p) => {
                    out.push('{');
                    out.push_str(p);
                    out.push('}');
                }
            }
        }
        out
    }

    /// Matches `path`; on a match, returns where in `path` the value of
    /// parameter number `capture` (the index into segments) lies, as a byte
    /// range, if asked: the range is computed while splitting, never
    /// recovered from pointers.
    pub(crate) fn matches(
        &self,
        path: &str,
        capture: Option<usize>,
    ) -> Option<Option<Range<usize>>> {
        if self.lead == self.segments.len() {
            // No parameter: the path is the literal.
            return (path == self.prefix).then_some(None);
        }
        // The literal prefix and suffix are byte compares; only the middle
        // (`42` in `/api/accounts/42/addressbook`) is split into segments.
        let inner_len = path
            .len()
            .checked_sub(self.prefix.len() + self.suffix.len())?;
        if !path.starts_with(self.prefix.as_str()) || !path.ends_with(self.suffix.as_str()) {
            return None;
        }
        let mut at = self.prefix.len();
        let mut rest = &path[at..at + inner_len];
        let mut captured = None;
        for i in self.lead..self.end {
            let (part, tail) = match rest.as_bytes().iter().position(|&b| b == b'/') {
                Some(j) => (&rest[..j], Some(&rest[j + 1..])),
                None => (rest, None),
            };
            match &self.segments[i] {
                Segment::Literal(l) => {
                    if part != l {
                        return None;
                    }
                }
                Segment::Param(_) => {
                    if part.is_empty() {
                        return None;
                    }
                    if capture == Some(i) {
                        captured = Some(at..at + part.len());
                    }
                }
            }
            match tail {
                // More segments in the path than in the pattern.
                Some(_) if i + 1 == self.end => return None,
                Some(t) => {
                    at += part.len() + 1;
                    rest = t;
                }
                // Fewer.
                None if i + 1 < self.end => return None,
                None => {}
            }
        }
        Some(captured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matcher's meaning, written the plain way: split on `/`, as
    /// many parts as segments, literals equal, parameters non-empty.
    fn reference_match<'a>(
        pattern: &PathPattern,
        path: &'a str,
        capture: Option<usize>,
    ) -> Option<Option<&'a str>> {
        // The plain way: split and compare.
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != pattern.segments.len() {
            return None;
        }
        let mut captured = None;
        for (i, (seg, part)) in pattern.segments.iter().zip(&parts).enumerate() {
            match seg {
                Segment::Literal(l) if part != l => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(_) if capture == Some(i) => captured = Some(*part),
                _ => {}
            }
        }
        Some(captured)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The prefix/suffix fast path never changes what matches.
        #[test]
        fn matcher_agrees_with_reference(
            pattern in proptest::sample::select(vec![
                "/", "/a", "/a/b", "/a/{id}", "/{id}", "/{id}/a", "/a/{id}/b",
                "/a/{id}/", "/a//{id}", "/a/{x}/{y}/b", "/ab/{id}/ab",
            ]),
            path in "(/(a|b|ab|x|1|)){0,5}",
            capture in 0usize..4,
        ) {
            let pat = PathPattern::parse(pattern).unwrap();
            for p in [path.as_str(), path.trim_start_matches('/')] {
                proptest::prop_assert_eq!(
                    pat.matches(p, Some(capture)).map(|c| c.map(|r| &p[r])),
                    reference_match(&pat, p, Some(capture)),
                    "pattern {} path {:?}", pattern, p
                );
            }
        }
    }
}
