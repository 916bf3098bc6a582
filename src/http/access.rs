//! Who may call the API. Every `/api/*` request carries a bearer token of
//! `[[http.tokens]]`: a `viewer` reads alerts and tasks, an `operator` also
//! acts on tasks — only its own department's when it is bound to one — and the
//! token's name is the `actor` recorded for what it does. Tokens are compared
//! in constant time, by their BLAKE3 digests, against every configured token.

use std::sync::Arc;

use subtle::{Choice, ConstantTimeEq};

use crate::config::{HttpConfig, Role};
use crate::error::{Error, Result};

/// Shortest token accepted: 16 bytes are beyond guessing over HTTP.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name: the `actor` of the task actions it takes.
    pub name: String,
    pub role: Role,
    pub department: Option<String>,
}

impl Caller {
    /// Why this caller may not act on any task, if it may not: a viewer.
    pub fn read_only(&self) -> Option<String> {
        (self.role == Role::Viewer).then(|| format!("token `{}` may only read", self.name))
    }

    /// Why this caller may not act on a task of `department`, if it is bound
    /// to another.
    pub fn bound_elsewhere(&self, department: &str) -> Option<String> {
        self.department
            .as_ref()
            .filter(|own| *own != department)
            .map(|own| {
                format!(
                    "token `{}` acts for {own}; this task belongs to {department}",
                    self.name
                )
            })
    }
}

/// The configured tokens, as digests.
#[derive(Default)]
pub struct Access {
    tokens: Vec<([u8; 32], Arc<Caller>)>,
    metrics: Option<[u8; 32]>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(_, c)| c.name.as_str()).collect();
        f.debug_struct("Access")
            .field("tokens", &names)
            .field("metrics_token", &self.metrics.is_some())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Access {
    /// Reads every token's secret; an unset or short one is an error, so a
    /// daemon never starts with an API its operators cannot use as configured.
    pub fn from_config(http: &HttpConfig) -> Result<Self> {
        let mut access = Access::default();
        let mut names = std::collections::BTreeSet::new();
        for t in &http.tokens {
            if !names.insert(t.name.as_str()) {
                return Err(Error::Other(format!(
                    "two [[http.tokens]] are named `{}`",
                    t.name
                )));
            }
            let secret = crate::secret::require(&t.secret, &format!("API token `{}`", t.name))?;
            check_length(&t.name, secret.expose())?;
            let caller = Caller {
                name: t.name.clone(),
                role: t.role,
                department: t.department.clone(),
            };
            access
                .tokens
                .push((digest(secret.expose()), Arc::new(caller)));
        }
        let mut seen = std::collections::BTreeSet::new();
        if access.tokens.iter().any(|(d, _)| !seen.insert(*d)) {
            return Err(Error::Other("two API tokens have the same value".into()));
        }
        if let Some(name) = &http.metrics_token {
            let secret = crate::secret::require(name, "the /metrics token")?;
            check_length("metrics", secret.expose())?;
            access.metrics = Some(digest(secret.expose()));
        }
        Ok(access)
    }

    /// One token, for runs that make their own (the demo).
    pub fn single(token: &str, caller: Caller) -> Self {
        Access {
            tokens: vec![(digest(token), Arc::new(caller))],
            metrics: None,
        }
    }

    /// The caller an `Authorization` header names, if its bearer token is one
    /// of ours. Every token is compared, whichever matches, so the time taken
    /// tells nothing of how close a guess came.
    pub fn caller(&self, authorization: Option<&str>) -> Option<Arc<Caller>> {
        self.caller_of(bearer(authorization)?)
    }

    /// The caller a token (from a header or the console's session cookie) names.
    pub fn caller_of(&self, token: &str) -> Option<Arc<Caller>> {
        let given = digest(token);
        let mut found = None;
        for (d, caller) in &self.tokens {
            let hit: Choice = d.ct_eq(&given);
            if bool::from(hit) {
                found = Some(caller.clone());
            }
        }
        found
    }

    /// Whether `/metrics` may be read with this `Authorization` header.
    pub fn metrics_allowed(&self, authorization: Option<&str>) -> bool {
        match &self.metrics {
            None => true,
            Some(want) => bearer(authorization).is_some_and(|t| bool::from(digest(t).ct_eq(want))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization?.strip_prefix("Bearer ").map(str::trim)
}

fn check_length(name: &str, token: &str) -> Result<()> {
    if token.len() < MIN_TOKEN_BYTES {
        return Err(Error::Other(format!(
            "token `{name}` is {} bytes; it must be at least {MIN_TOKEN_BYTES} \
             (e.g. `head -c 24 /dev/urandom | base64`)",
            token.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str, role: Role, department: Option<&str>) -> Caller {
        Caller {
            name: name.into(),
            role,
            department: department.map(String::from),
        }
    }

    #[test]
    fn only_a_configured_bearer_token_names_a_caller() {
        let a = Access::single("0123456789abcdef", caller("duty", Role::Viewer, None));
        assert_eq!(
            a.caller(Some("Bearer 0123456789abcdef")).unwrap().name,
            "duty"
        );
        for wrong in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Bearer 0123456789abcdeF"),
            Some("0123456789abcdef"),
            Some("Basic 0123456789abcdef"),
        ] {
            assert!(a.caller(wrong).is_none(), "{wrong:?}");
        }
        assert!(a.metrics_allowed(None), "open without a metrics token");
    }

    #[test]
    fn roles_and_departments_decide_who_acts() {
        assert!(caller("v", Role::Viewer, None).read_only().is_some());
        assert!(caller("o", Role::Operator, None).read_only().is_none());
        assert!(
            caller("o", Role::Operator, None)
                .bound_elsewhere("d")
                .is_none()
        );
        assert!(
            caller("o", Role::Operator, Some("d"))
                .bound_elsewhere("d")
                .is_none()
        );
        let no = caller("o", Role::Operator, Some("d"))
            .bound_elsewhere("e")
            .unwrap();
        assert!(no.contains("acts for d"), "{no}");
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(check_length("x", "short").is_err());
        assert!(check_length("x", "sixteen-bytes-ok").is_ok());
    }
}
