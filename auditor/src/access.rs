//! Who may do what through the HTTP API and pages.
//!
//! **Authentication** is by bearer token, by client certificate, or both.
//!
//! - *Token*: the users file maps the SHA-256 of a token (hex; the token itself is never
//!   stored) to a user. A request carries it as `Authorization: Bearer <token>` (API
//!   clients) or as HTTP Basic `Authorization: Basic base64(<user>:<token>)` (browsers: a
//!   request without credentials is answered 401 with `WWW-Authenticate: Basic`, so a
//!   browser prompts; the user name must then match the token's user).
//! - *Client certificate*, when `[tls] client_ca_file` is set: the TLS handshake verifies
//!   the certificate against that CA (and its CRLs), so an unverifiable certificate never
//!   gets a connection. The verified certificate is then matched, once per connection
//!   ([`Users::identify`]), against the users' `cert_subject` and `cert_sha256`:
//!   - `cert_subject` is compared exactly, ignoring ASCII case, with each of the
//!     certificate's SAN e-mail addresses (rfc822Name) and SAN DNS names; the subject's
//!     common name (CN) counts only for a certificate that has neither, so a CN is never
//!     weighed against a SAN. No wildcard, no suffix match ([`certificate_names`]).
//!   - `cert_sha256` pins one certificate: the SHA-256 of its DER encoding, in hex, colons
//!     allowed (as `openssl x509 -noout -fingerprint -sha256` prints it).
//!   - a user with both is identified only by a certificate that satisfies both; two users
//!     may not share a `cert_subject`, a `cert_sha256` or a name.
//!
//!   A certificate that identifies exactly one user authenticates as that user. One that
//!   identifies nobody (a source's certificate, signed by the same CA or not) or several
//!   users is refused with 403 on every route, whatever else the request carries.
//!
//! **Token and certificate together**: they must name the same user. A certificate user
//! sending no `Authorization` is that user; sending that same user's token is fine;
//! sending another user's token, or an unknown one, is refused (403), never resolved in
//! favour of either credential:
//!
//! ```text
//! client certificate    no Authorization   token of user U      other or unknown token
//! none                  401 (prompt)       U                    403
//! identifies U          U                  U                    403
//! identifies nobody     403                403                  403
//! identifies several    403                403                  403
//! ```
//!
//! Whichever way a user authenticated, what they read or file is recorded under their
//! `name`.
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
//! (the rest as digests, see [`crate::export::BundleScope`]). A source has nothing to do
//! here: its certificate identifies no user, and an unknown token (a source's, or any
//! other) is refused with 403 on everything.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::finding::Lang;

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

/// One user of the users file: at least one of `token_sha256`, `cert_subject` and
/// `cert_sha256`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's name, recorded as `filed_by` of what they file or read.
    pub name: String,
    /// SHA-256 of the user's token, 64 hex digits; none for a certificate-only user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// A SAN e-mail address or DNS name (or, for a certificate without either, the CN)
    /// of the user's client certificate; compared exactly, ignoring ASCII case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    /// SHA-256 of the user's client certificate (DER), 64 hex digits, colons allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The role.
    pub role: Role,
    /// The tenants; `*` for all.
    pub tenants: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field(
                "token_sha256",
                &self.token_sha256.as_ref().map(|_| "<redacted>"),
            )
            .field("cert_subject", &self.cert_subject)
            .field("cert_sha256", &self.cert_sha256)
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

/// Who a connection's client certificate says its holder is, decided once per connection
/// (rustls neither renegotiates nor re-authenticates a connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCert {
    /// No certificate: plain HTTP, no `client_ca_file`, or a client that sent none.
    Absent,
    /// A verified certificate that identifies this user.
    User(User),
    /// A verified certificate that identifies no user (a source's, say): its names, for
    /// the logs.
    NoUser {
        /// What [`certificate_names`] read from it.
        names: Vec<String>,
    },
    /// A verified certificate that identifies several users.
    SeveralUsers {
        /// Their names.
        users: Vec<String>,
    },
}

/// The outcome of authenticating a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials: 401, so that a browser asks for them.
    Missing,
    /// 403 on everything, for this reason.
    Refused(Refusal),
    /// A known user.
    User(User),
}

/// Why a request's credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown token, wrong user name or malformed header.
    Credentials,
    /// A client certificate that identifies no user (a source's certificate).
    CertificateOfNoUser,
    /// A client certificate that identifies several users.
    CertificateOfSeveralUsers,
    /// The token and the client certificate name different users.
    TokenAndCertificateDisagree,
}

impl Refusal {
    /// What the answer says: `forbidden` for unknown credentials (nothing to learn from
    /// it), the reason otherwise, in `lang` (pages) or English (the API).
    pub fn message(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Refusal::Credentials, _) => "forbidden",
            (Refusal::CertificateOfNoUser, Lang::En) => {
                "this client certificate identifies no user of the auditor: \
                 a source's certificate opens nothing here"
            }
            (Refusal::CertificateOfNoUser, Lang::Fr) => {
                "ce certificat client n'identifie aucun utilisateur de l'auditeur : \
                 un certificat de source n'ouvre rien ici"
            }
            (Refusal::CertificateOfSeveralUsers, Lang::En) => {
                "this client certificate identifies several users: \
                 refused until the configuration tells them apart"
            }
            (Refusal::CertificateOfSeveralUsers, Lang::Fr) => {
                "ce certificat client désigne plusieurs utilisateurs : \
                 refusé tant que la configuration ne les distingue pas"
            }
            (Refusal::TokenAndCertificateDisagree, Lang::En) => {
                "the token and the client certificate name different users"
            }
            (Refusal::TokenAndCertificateDisagree, Lang::Fr) => {
                "le jeton et le certificat client désignent des utilisateurs différents"
            }
        }
    }
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
    /// A user with no way to authenticate.
    #[error("user {user}: needs token_sha256, cert_subject or cert_sha256")]
    NoCredential {
        /// The user.
        user: String,
    },
    /// An empty `cert_subject`.
    #[error("user {user}: cert_subject is empty")]
    EmptySubject {
        /// The user.
        user: String,
    },
    /// A certificate fingerprint is not 64 hex digits.
    #[error("user {user}: cert_sha256 must be 64 hex digits (colons allowed)")]
    BadFingerprint {
        /// The user.
        user: String,
    },
    /// Two users share a name, a `cert_subject` or a `cert_sha256`.
    #[error("user {user}: {field} already used by {other}")]
    Shared {
        /// The user.
        user: String,
        /// `name`, `cert_subject` or `cert_sha256`.
        field: &'static str,
        /// The other one.
        other: String,
    },
}

/// A user identified by certificate: by a subject name (lowercase), a pin, or both.
#[derive(Debug, Clone)]
struct ByCertificate {
    subject: Option<String>,
    sha256: Option<[u8; 32]>,
    user: User,
}

impl ByCertificate {
    fn matches(&self, names: &[String], fingerprint: &[u8; 32]) -> bool {
        self.subject
            .as_ref()
            .is_none_or(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s)))
            && self.sha256.is_none_or(|pin| &pin == fingerprint)
    }
}

/// The users, indexed by their token's digest and by their certificate.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_digest: HashMap<[u8; 32], User>,
    by_certificate: Vec<ByCertificate>,
}

impl Users {
    /// Indexes the users of the configuration.
    ///
    /// # Errors
    /// [`UsersError`] for a malformed or shared digest, subject or fingerprint, a shared
    /// name, a user without tenants or without any credential.
    pub fn new(users: &[UserConfig]) -> Result<Users, UsersError> {
        let mut by_digest = HashMap::new();
        let mut by_certificate: Vec<ByCertificate> = Vec::new();
        let mut names = HashSet::new();
        for u in users {
            let user_name = || u.name.clone();
            if !names.insert(u.name.as_str()) {
                return Err(UsersError::Shared {
                    user: user_name(),
                    field: "name",
                    other: user_name(),
                });
            }
            if u.tenants.is_empty() {
                return Err(UsersError::NoTenant { user: user_name() });
            }
            if u.token_sha256.is_none() && u.cert_subject.is_none() && u.cert_sha256.is_none() {
                return Err(UsersError::NoCredential { user: user_name() });
            }
            let user = User {
                name: u.name.clone(),
                role: u.role,
                tenants: u.tenants.clone(),
            };
            if let Some(hex_digest) = &u.token_sha256 {
                let digest = parse_sha256(hex_digest, false)
                    .ok_or_else(|| UsersError::BadDigest { user: user_name() })?;
                if let Some(other) = by_digest.insert(digest, user.clone()) {
                    return Err(UsersError::Duplicate {
                        user: user_name(),
                        other: other.name,
                    });
                }
            }
            let subject = match u.cert_subject.as_deref().map(str::trim) {
                Some("") => return Err(UsersError::EmptySubject { user: user_name() }),
                other => other.map(str::to_ascii_lowercase),
            };
            let sha256 = match &u.cert_sha256 {
                Some(pin) => Some(
                    parse_sha256(pin, true)
                        .ok_or_else(|| UsersError::BadFingerprint { user: user_name() })?,
                ),
                None => None,
            };
            if subject.is_none() && sha256.is_none() {
                continue;
            }
            for other in &by_certificate {
                let field = if subject.is_some() && other.subject == subject {
                    "cert_subject"
                } else if sha256.is_some() && other.sha256 == sha256 {
                    "cert_sha256"
                } else {
                    continue;
                };
                return Err(UsersError::Shared {
                    user: user_name(),
                    field,
                    other: other.user.name.clone(),
                });
            }
            by_certificate.push(ByCertificate {
                subject,
                sha256,
                user,
            });
        }
        Ok(Users {
            by_digest,
            by_certificate,
        })
    }

    /// Whether some user is identified by a client certificate.
    pub fn any_by_certificate(&self) -> bool {
        !self.by_certificate.is_empty()
    }

    /// Who a verified client certificate (DER) identifies.
    pub fn identify(&self, certificate: &[u8]) -> ClientCert {
        let names = certificate_names(certificate);
        let fingerprint: [u8; 32] = Sha256::digest(certificate).into();
        let found: Vec<&User> = self
            .by_certificate
            .iter()
            .filter(|c| c.matches(&names, &fingerprint))
            .map(|c| &c.user)
            .collect();
        match found.as_slice() {
            [] => ClientCert::NoUser { names },
            [one] => ClientCert::User((*one).clone()),
            several => ClientCert::SeveralUsers {
                users: several.iter().map(|u| u.name.clone()).collect(),
            },
        }
    }

    /// Authenticates a request: the connection's client certificate and the value of its
    /// `Authorization` header (`None` when absent), by the rule of the module's table.
    pub fn authenticate(&self, certificate: &ClientCert, authorization: Option<&str>) -> Auth {
        match certificate {
            ClientCert::Absent => self.by_token(authorization),
            ClientCert::NoUser { .. } => Auth::Refused(Refusal::CertificateOfNoUser),
            ClientCert::SeveralUsers { .. } => Auth::Refused(Refusal::CertificateOfSeveralUsers),
            ClientCert::User(by_cert) => match self.by_token(authorization) {
                Auth::Missing => Auth::User(by_cert.clone()),
                Auth::User(by_token) if by_token.name == by_cert.name => Auth::User(by_token),
                Auth::User(_) => Auth::Refused(Refusal::TokenAndCertificateDisagree),
                refused @ Auth::Refused(_) => refused,
            },
        }
    }

    /// Authenticates the value of an `Authorization` header alone.
    fn by_token(&self, authorization: Option<&str>) -> Auth {
        let Some(header) = authorization else {
            return Auth::Missing;
        };
        let refused = Auth::Refused(Refusal::Credentials);
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
        let (name, token) = if scheme.eq_ignore_ascii_case("bearer") {
            (None, rest.trim().to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
            else {
                return refused;
            };
            let Some((name, token)) = decoded.split_once(':') else {
                return refused;
            };
            (Some(name.to_owned()), token.to_owned())
        } else {
            return refused;
        };
        if token.is_empty() {
            return Auth::Missing;
        }
        match self.by_digest.get(&token_digest(&token)) {
            Some(user) if name.as_deref().is_none_or(|n| n == user.name) => {
                Auth::User(user.clone())
            }
            _ => refused,
        }
    }
}

/// 32 bytes from 64 hex digits (with `colons`, also `AB:CD:…`).
fn parse_sha256(text: &str, colons: bool) -> Option<[u8; 32]> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| !(colons && *c == ':'))
        .collect();
    hex::decode(digits).ok()?.try_into().ok()
}

/// The SHA-256 of a token, as stored in the users file (hex) once encoded.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex SHA-256 of a token, to put in the users file.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(token_digest(token))
}

/// The hex SHA-256 of a certificate's DER encoding, to put in `cert_sha256`.
pub fn certificate_sha256_hex(certificate: &[u8]) -> String {
    hex::encode(Sha256::digest(certificate))
}

/// The names `cert_subject` is compared with: the certificate's SAN e-mail addresses and
/// DNS names, in order; the subject's common names only when it has neither. Empty when
/// the DER cannot be read (rustls has verified it before: this does not happen for a
/// certificate that reached us).
pub fn certificate_names(certificate: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(n) | GeneralName::DNSName(n) => {
                    names.push((*n).to_owned());
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        for cn in parsed.subject().iter_common_name() {
            let value = cn.attr_value();
            if let Ok(text) = cn.as_str() {
                names.push(text.to_owned());
            } else if value.tag() == x509_parser::der_parser::asn1_rs::Tag::BmpString
                && value.data.len().is_multiple_of(2)
            {
                // UTF-16BE, which the parser does not turn into text.
                let units = value
                    .data
                    .chunks_exact(2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]));
                names.extend(
                    char::decode_utf16(units)
                        .collect::<Result<String, _>>()
                        .ok(),
                );
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, role: Role, tenants: &[&str]) -> UserConfig {
        UserConfig {
            name: name.into(),
            token_sha256: Some(token_sha256_hex(&format!("tok-{name}"))),
            cert_subject: None,
            cert_sha256: None,
            role,
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn users() -> Users {
        Users::new(&[
            config("rssi", Role::Rssi, &["chu-lyon"]),
            config("group", Role::Rssi, &["*"]),
            config("aud", Role::Auditor, &["*"]),
            config("decl", Role::Declarant, &["chu-lyon"]),
        ])
        .expect("users")
    }

    fn user(auth: Auth) -> User {
        match auth {
            Auth::User(u) => u,
            other => panic!("not a user: {other:?}"),
        }
    }

    const NO_CERT: &ClientCert = &ClientCert::Absent;

    #[test]
    fn bearer_and_basic_authenticate_and_unknown_tokens_are_refused() {
        let users = users();
        let refused = Auth::Refused(Refusal::Credentials);
        assert_eq!(users.authenticate(NO_CERT, None), Auth::Missing);
        assert_eq!(
            user(users.authenticate(NO_CERT, Some("Bearer tok-rssi"))).name,
            "rssi"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("aud:tok-aud");
        assert_eq!(
            user(users.authenticate(NO_CERT, Some(&format!("Basic {basic}")))).role,
            Role::Auditor
        );
        let wrong_name = base64::engine::general_purpose::STANDARD.encode("rssi:tok-aud");
        assert_eq!(
            users.authenticate(NO_CERT, Some(&format!("Basic {wrong_name}"))),
            refused
        );
        assert_eq!(users.authenticate(NO_CERT, Some("Bearer nope")), refused);
        assert_eq!(users.authenticate(NO_CERT, Some("Digest x")), refused);
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        let users = users();
        let get = |t: &str| user(users.authenticate(NO_CERT, Some(&format!("Bearer tok-{t}"))));
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
            token_sha256: Some("abc".into()),
            ..config("x", Role::Rssi, &["a"])
        };
        assert!(matches!(
            Users::new(std::slice::from_ref(&bad)),
            Err(UsersError::BadDigest { .. })
        ));
        assert!(!format!("{bad:?}").contains("abc"));
        let nothing = UserConfig {
            token_sha256: None,
            ..config("x", Role::Rssi, &["a"])
        };
        assert!(matches!(
            Users::new(&[nothing]),
            Err(UsersError::NoCredential { .. })
        ));
        let pin = |name: &str, pin: &str| UserConfig {
            cert_sha256: Some(pin.into()),
            ..config(name, Role::Rssi, &["a"])
        };
        assert!(matches!(
            Users::new(&[pin("x", "12:34")]),
            Err(UsersError::BadFingerprint { .. })
        ));
        let subject = |name: &str, subject: &str| UserConfig {
            cert_subject: Some(subject.into()),
            ..config(name, Role::Rssi, &["a"])
        };
        assert!(matches!(
            Users::new(&[subject("x", " ")]),
            Err(UsersError::EmptySubject { .. })
        ));
        // Nothing may be ambiguous: a name, a subject (whatever its case) or a pin is one
        // user's.
        let shared = |users: &[UserConfig]| match Users::new(users) {
            Err(UsersError::Shared { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(
            shared(&[subject("x", "a@b.fr"), subject("y", "A@B.FR")]),
            "cert_subject"
        );
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(
            shared(&[pin("x", &"ab".repeat(32)), pin("y", &colons)]),
            "cert_sha256"
        );
        assert_eq!(
            shared(&[
                config("x", Role::Rssi, &["a"]),
                UserConfig {
                    token_sha256: Some(token_sha256_hex("other")),
                    ..config("x", Role::Auditor, &["a"])
                }
            ]),
            "name"
        );
    }

    /// A CA and a way to issue client certificates with chosen names.
    struct Pki {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl Pki {
        fn new() -> Pki {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::default();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "PKI du CHU");
            Pki {
                issuer: rcgen::Issuer::new(params, key),
            }
        }

        fn issue(&self, cn: Option<&str>, sans: Vec<rcgen::SanType>) -> Vec<u8> {
            self.issue_cn(cn.map(rcgen::DnValue::from), sans)
        }

        fn issue_cn(&self, cn: Option<rcgen::DnValue>, sans: Vec<rcgen::SanType>) -> Vec<u8> {
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            if let Some(cn) = cn {
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, cn);
            }
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "CHU");
            params.subject_alt_names = sans;
            let key = rcgen::KeyPair::generate().expect("key");
            params
                .signed_by(&key, &self.issuer)
                .expect("signed")
                .der()
                .to_vec()
        }
    }

    fn email(s: &str) -> rcgen::SanType {
        rcgen::SanType::Rfc822Name(s.try_into().expect("ia5"))
    }

    fn dns(s: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(s.try_into().expect("ia5"))
    }

    #[test]
    fn certificate_names_are_the_sans_or_else_the_common_name() {
        let pki = Pki::new();
        let both = pki.issue(
            Some("Jeanne Dupont"),
            vec![
                email("rssi.dupont@chu-lyon.fr"),
                rcgen::SanType::IpAddress([10, 0, 0, 1].into()),
                dns("poste-12.chu-lyon.fr"),
            ],
        );
        assert_eq!(
            certificate_names(&both),
            ["rssi.dupont@chu-lyon.fr", "poste-12.chu-lyon.fr"]
        );
        let cn_only = pki.issue(Some("Élodie Martin"), vec![]);
        assert_eq!(certificate_names(&cn_only), ["Élodie Martin"]);
        let bmp = rcgen::DnValue::BmpString("Zoé Bernard".try_into().expect("bmp"));
        assert_eq!(
            certificate_names(&pki.issue_cn(Some(bmp), vec![])),
            ["Zoé Bernard"]
        );
        assert!(certificate_names(&pki.issue(None, vec![])).is_empty());
        // Whatever the bytes, reading them never panics.
        for cut in 0..both.len() {
            let _ = certificate_names(&both[..cut]);
            let mut flipped = both.clone();
            flipped[cut] ^= 0xff;
            let _ = certificate_names(&flipped);
        }
        assert!(certificate_names(b"\x30\x84\xff\xff\xff\xff").is_empty());
    }

    #[test]
    fn certificates_identify_one_user_and_must_agree_with_the_token() {
        let pki = Pki::new();
        let dupont = pki.issue(
            Some("Jeanne Dupont"),
            vec![email("RSSI.Dupont@chu-lyon.fr")],
        );
        let pinned = pki.issue(Some("Audit"), vec![dns("audit.cabinet.fr")]);
        let source = pki.issue(
            Some("bastion.chu-lyon.fr"),
            vec![dns("bastion.chu-lyon.fr")],
        );
        // A CN counts only without SANs: this one's CN is a user's subject, its SAN not.
        let cn_behind_san = pki.issue(Some("rssi.dupont@chu-lyon.fr"), vec![dns("x.fr")]);
        let both_users = pki.issue(
            None,
            vec![email("rssi.dupont@chu-lyon.fr"), dns("ssi.groupe.fr")],
        );
        let users = Users::new(&[
            UserConfig {
                cert_subject: Some("rssi.dupont@chu-lyon.fr".into()),
                ..config("rssi", Role::Rssi, &["chu-lyon"])
            },
            UserConfig {
                token_sha256: None,
                cert_subject: Some("audit.cabinet.fr".into()),
                cert_sha256: Some(certificate_sha256_hex(&pinned).to_uppercase()),
                ..config("aud", Role::Auditor, &["*"])
            },
            UserConfig {
                cert_subject: Some("ssi.groupe.fr".into()),
                ..config("group", Role::Rssi, &["*"])
            },
            config("decl", Role::Declarant, &["chu-lyon"]),
        ])
        .expect("users");
        assert!(users.any_by_certificate());

        let rssi = users.identify(&dupont);
        assert_eq!(user(users.authenticate(&rssi, None)).name, "rssi");
        assert_eq!(
            user(users.authenticate(&rssi, Some("Bearer tok-rssi"))).name,
            "rssi"
        );
        assert_eq!(
            users.authenticate(&rssi, Some("Bearer tok-decl")),
            Auth::Refused(Refusal::TokenAndCertificateDisagree)
        );
        assert_eq!(
            users.authenticate(&rssi, Some("Bearer stolen")),
            Auth::Refused(Refusal::Credentials)
        );

        assert_eq!(
            user(users.authenticate(&users.identify(&pinned), None)).name,
            "aud"
        );
        // The pin narrows the subject: another certificate with the same name is nobody.
        let same_name = pki.issue(Some("Audit"), vec![dns("audit.cabinet.fr")]);
        assert_eq!(
            users.identify(&same_name),
            ClientCert::NoUser {
                names: vec!["audit.cabinet.fr".into()]
            }
        );

        for nobody in [&source, &cn_behind_san] {
            let cert = users.identify(nobody);
            assert!(matches!(cert, ClientCert::NoUser { .. }), "{cert:?}");
            for authorization in [None, Some("Bearer tok-decl"), Some("Bearer tok-rssi")] {
                assert_eq!(
                    users.authenticate(&cert, authorization),
                    Auth::Refused(Refusal::CertificateOfNoUser)
                );
            }
        }
        let several = users.identify(&both_users);
        assert!(matches!(several, ClientCert::SeveralUsers { .. }));
        assert_eq!(
            users.authenticate(&several, Some("Bearer tok-rssi")),
            Auth::Refused(Refusal::CertificateOfSeveralUsers)
        );
        assert_eq!(
            users.identify(b"not a certificate"),
            ClientCert::NoUser { names: vec![] }
        );
    }
}
