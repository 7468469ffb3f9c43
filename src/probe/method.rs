//! The methods a probe answers to. A router answers `HEAD` with the `GET`
//! handler (same status, no body), so a probe on `GET` counts `HEAD` too:
//! otherwise every guess could be made with `HEAD` and go uncounted.

use http::Method;

/// The methods of one probe: any, or a short list (`GET` bringing `HEAD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Methods {
    /// `*`: every method.
    Any,
    /// These methods (at most a handful; compared in order).
    List(Vec<Method>),
}

impl Methods {
    /// Parses `*`, one method, or several separated by commas
    /// (`"GET, POST"`). `GET` brings `HEAD` with it.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Methods::Any);
        }
        let mut list: Vec<Method> = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part == "*" {
                return Err("`*` stands alone: it already means every method".into());
            }
            let m = Method::from_bytes(part.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("`{part}` is not an HTTP method"))?;
            if !list.contains(&m) {
                list.push(m);
            }
        }
        if list.contains(&Method::GET) && !list.contains(&Method::HEAD) {
            list.push(Method::HEAD);
        }
        Ok(Methods::List(list))
    }

    /// Whether a request with `method` is for this probe.
    #[inline]
    pub(crate) fn contains(&self, method: &Method) -> bool {
        match self {
            Methods::Any => true,
            Methods::List(l) => l.iter().any(|m| m == method),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_brings_head_and_lists_parse() {
        let m = Methods::parse("GET").unwrap();
        assert!(m.contains(&Method::GET) && m.contains(&Method::HEAD));
        assert!(!m.contains(&Method::POST));
        let m = Methods::parse("post, put").unwrap();
        assert!(m.contains(&Method::POST) && m.contains(&Method::PUT));
        assert!(!m.contains(&Method::HEAD) && !m.contains(&Method::GET));
        assert!(Methods::parse("*").unwrap().contains(&Method::DELETE));
        assert!(Methods::parse("GET, *").is_err());
        assert!(Methods::parse("GET,").is_err());
        assert!(Methods::parse("G ET").is_err());
    }
}
