//! Who may do what through the HTTP API and pages.
//!
//! **Authentication** is by bearer token: the configuration's users file maps the SHA-256
//! of a token (hex; the token itself is never stored) to a user. A request carries the
//! token either as `Authorization: Bearer <token>` (API clients) or as HTTP Basic
//! `Authorization: Basic base64(<user>:<token>)` (browsers: a request without credentials
//! is answered 401 with `WWW-Authenticate: Basic`, so a browser prompts; the user name
//! must then match the token's user).
//!
//! **Roles**, each with a list of tenants (establishments); `*` means every tenant:
//!
//! ```text
//! role       report  pages  journal+bundle  declarations  verify
//! rssi       own     own    own             own           yes
//! auditor    listed  listed no              no            yes
//! declarant  no      no     no              listed        no
//! ```
//!
//! A bundle served for a tenant holds in full only that tenant's entries of the vendor
//! (the rest as digests, see [`crate::export::BundleScope`]). A source certificate has
//! nothing to do here: an unknown token (a source's, or any other) is refused with 403 on
//! everything.

use std::collections::HashMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A hospital's CISO: reads everything of its own tenants, files their declarations.
    Rssi,
    /// A compliance auditor: reads reports (and the pages) of the tenants listed.
    Auditor,
    /// Files declarations for the tenants listed, reads nothing.
    Declarant,
}

/// One user of the users file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's name, recorded as `filed_by` of what they file or read.
    pub name: String,
    /// SHA-256 of the user's token, 64 hex digits.
    pub token_sha256: String,
    /// The role.
    pub role: Role,
    /// The tenants; `*` for all.
    pub tenants: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("token_sha256", &"<redacted>")
            .field("role", &self.role)
            .field("tenants", &self.tenants)
            .finish()
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    tenants: Vec<String>,
}

/// What a request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// A conformance report of a tenant.
    Report(&'a str),
    /// The pages of a tenant.
    Pages(&'a str),
    /// A vendor's journal in a tenant.
    Journal(&'a str),
    /// Filing declarations for a tenant.
    Declare(&'a str),
    /// Verifying the chains.
    Verify,
}

impl User {
    fn covers(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }

    /// Whether the user may do `action`.
    pub fn may(&self, action: Action<'_>) -> bool {
        match (self.role, action) {
            (Role::Rssi, Action::Report(t) | Action::Pages(t) | Action::Journal(t)) => {
                self.covers(t)
            }
            (Role::Rssi | Role::Declarant, Action::Declare(t)) => self.covers(t),
            (Role::Rssi | Role::Auditor, Action::Verify) => true,
            (Role::Auditor, Action::Report(t) | Action::Pages(t)) => self.covers(t),
            _ => false,
        }
    }
}

/// The outcome of authenticating a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials: 401, so that a browser asks for them.
    Missing,
    /// Unknown token, wrong user name or malformed header: 403 on everything.
    Refused,
    /// A known user.
    User(User),
}

/// Why the users file is refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A digest is not 64 hex digits.
    #[error("user {user}: token_sha256 must be 64 hex digits")]
    BadDigest {
        /// The user.
        user: String,
    },
    /// Two users share a digest.
    #[error("user {user}: token_sha256 already used by {other}")]
    Duplicate {
        /// The user.
        user: String,
        /// The other one.
        other: String,
    },
    /// A user without tenants.
    #[error("user {user}: tenants is empty")]
    NoTenant {
        /// The user.
        user: String,
    },
}

/// The users, indexed by their token's digest.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_digest: HashMap<[u8; 32], User>,
}

impl Users {
    /// Indexes the users of the configuration.
    ///
    /// # Errors
    /// [`UsersError`] for a malformed or duplicate digest, or a user without tenants.
    pub fn new(users: &[UserConfig]) -> Result<Users, UsersError> {
        let mut by_digest = HashMap::new();
        for u in users {
            let digest: [u8; 32] = hex::decode(u.token_sha256.trim())
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| UsersError::BadDigest {
                    user: u.name.clone(),
                })?;
            if u.tenants.is_empty() {
                return Err(UsersError::NoTenant {
                    user: u.name.clone(),
                });
            }
            let user = User {
                name: u.name.clone(),
                role: u.role,
                tenants: u.tenants.clone(),
            };
            if let Some(other) = by_digest.insert(digest, user) {
                return Err(UsersError::Duplicate {
                    user: u.name.clone(),
                    other: other.name,
                });
            }
        }
        Ok(Users { by_digest })
    }

    /// Authenticates the value of an `Authorization` header (`None` when absent).
    pub fn authenticate(&self, authorization: Option<&str>) -> Auth {
        let Some(header) = authorization else {
            return Auth::Missing;
        };
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
        let (name, token) = if scheme.eq_ignore_ascii_case("bearer") {
            (None, rest.trim().to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
            else {
                return Auth::Refused;
            };
            let Some((name, token)) = decoded.split_once(':') else {
                return Auth::Refused;
            };
            (Some(name.to_owned()), token.to_owned())
        } else {
            return Auth::Refused;
        };
        if token.is_empty() {
            return Auth::Missing;
        }
        match self.by_digest.get(&token_digest(&token)) {
            Some(user) if name.as_deref().is_none_or(|n| n == user.name) => {
                Auth::User(user.clone())
            }
            _ => Auth::Refused,
        }
    }
}

/// The SHA-256 of a token, as stored in the users file (hex) once encoded.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex SHA-256 of a token, to put in the users file.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(token_digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let u = |name: &str, role, tenants: &[&str]| UserConfig {
            name: name.into(),
            token_sha256: token_sha256_hex(&format!("tok-{name}")),
            role,
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
        };
        Users::new(&[
            u("rssi", Role::Rssi, &["chu-lyon"]),
            u("group", Role::Rssi, &["*"]),
            u("aud", Role::Auditor, &["*"]),
            u("decl", Role::Declarant, &["chu-lyon"]),
        ])
        .expect("users")
    }

    fn user(auth: Auth) -> User {
        match auth {
            Auth::User(u) => u,
            other => panic!("not a user: {other:?}"),
        }
    }

    #[test]
    fn bearer_and_basic_authenticate_and_unknown_tokens_are_refused() {
        let users = users();
        assert_eq!(users.authenticate(None), Auth::Missing);
        assert_eq!(
            user(users.authenticate(Some("Bearer tok-rssi"))).name,
            "rssi"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("aud:tok-aud");
        assert_eq!(
            user(users.authenticate(Some(&format!("Basic {basic}")))).role,
            Role::Auditor
        );
        let wrong_name = base64::engine::general_purpose::STANDARD.encode("rssi:tok-aud");
        assert_eq!(
            users.authenticate(Some(&format!("Basic {wrong_name}"))),
            Auth::Refused
        );
        assert_eq!(users.authenticate(Some("Bearer nope")), Auth::Refused);
        assert_eq!(users.authenticate(Some("Digest x")), Auth::Refused);
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        let users = users();
        let get = |t: &str| user(users.authenticate(Some(&format!("Bearer tok-{t}"))));
        let (rssi, group, aud, decl) = (get("rssi"), get("group"), get("aud"), get("decl"));
        assert!(rssi.may(Action::Report("chu-lyon")) && !rssi.may(Action::Report("chu-nice")));
        assert!(rssi.may(Action::Journal("chu-lyon")) && !rssi.may(Action::Journal("x")));
        assert!(rssi.may(Action::Declare("chu-lyon")) && !rssi.may(Action::Declare("x")));
        assert!(group.may(Action::Journal("any")) && group.may(Action::Pages("any")));
        assert!(aud.may(Action::Report("x")) && aud.may(Action::Pages("x")));
        assert!(!aud.may(Action::Journal("x")) && !aud.may(Action::Declare("x")));
        assert!(decl.may(Action::Declare("chu-lyon")) && !decl.may(Action::Report("chu-lyon")));
        assert!(!decl.may(Action::Verify) && aud.may(Action::Verify));
    }

    #[test]
    fn malformed_users_files_are_refused() {
        let bad = UserConfig {
            name: "x".into(),
            token_sha256: "abc".into(),
            role: Role::Rssi,
            tenants: vec!["a".into()],
        };
        assert!(matches!(
            Users::new(std::slice::from_ref(&bad)),
            Err(UsersError::BadDigest { .. })
        ));
        assert!(!format!("{bad:?}").contains("abc"));
    }
}
