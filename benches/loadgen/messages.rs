//! Realistic source messages, drawn with a fixed seed: the same flags give the same
//! messages in the same order on every run.
//!
//! Each message is an RFC 5424 line as a bastion or gateway would send it, about 250-350
//! bytes, from one of the source profiles the collector understands, for one tenant (the
//! SD element `[vigie@32473 tenant="…"]`), one vendor and one of its people:
//!
//! ```text
//! <86>1 2026-03-02T09:14:07.412391+01:00 bastion-02.chu-02.fr sshd 48213 - [vigie@32473 tenant="CHU-02"] Accepted publickey for ext-radiologix-ngarnier7 from 198.51.100.24 port 51234 ssh2: ED25519 SHA256:…
//! <29>1 … vpn-01.chu-01.fr openvpn 1123 - [vigie@32473 tenant="CHU-01"] 203.0.113.7:51234 [ngarnier7.radiologix] Peer Connection Initiated with [AF_INET]203.0.113.7:51234
//! <189>1 … fw-01.chu-03.fr - - - [vigie@32473 tenant="CHU-03"] date=… type="event" subtype="vpn" … action="tunnel-up" …
//! <14>1 … teleport.chu-04.fr teleport 771 - [vigie@32473 tenant="CHU-04"] {"event":"session.start","code":"T2000I",…}
//! <134>1 … guac.chu-01.fr guacamole 2290 - [vigie@32473 tenant="CHU-01"] 14:02:11.354 [http-nio-8080-exec-5] INFO … User "ngarnier7" connected to connection "12".
//! <134>1 … jump.chu-02.fr acme-pam 3310 - [vigie@32473 tenant="CHU-02"] event=login user=… src=… dst=… vendor=… ticket=…
//! ```
//!
//! A pool of messages is generated once, before the clock starts, so that the generator
//! spends its time on the wire and not on formatting.

use std::fmt::Write as _;

/// A small, fast, seeded generator (SplitMix64): repeatable, not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The source profiles a message can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sshd,
    OpenVpn,
    FortiGate,
    Teleport,
    Guacamole,
    /// The `acme-pam` generic key=value profile of `deploy/collector.toml`.
    Generic,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Sshd,
        Kind::OpenVpn,
        Kind::FortiGate,
        Kind::Teleport,
        Kind::Guacamole,
        Kind::Generic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sshd => "sshd",
            Kind::OpenVpn => "openvpn",
            Kind::FortiGate => "fortigate",
            Kind::Teleport => "teleport",
            Kind::Guacamole => "guacamole",
            Kind::Generic => "generic",
        }
    }
}

/// What the pool is drawn from.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Relative weights of each profile.
    pub weights: Vec<(Kind, u32)>,
    /// Number of tenants (`CHU-01`, `CHU-02`, …).
    pub tenants: usize,
    /// Number of vendors.
    pub vendors: usize,
    /// Number of people (each works for vendor `person % vendors`).
    pub persons: usize,
}

impl Mix {
    /// Parses `sshd=30,openvpn=15,…` (missing profiles weigh 0).
    pub fn parse_weights(text: &str) -> Result<Vec<(Kind, u32)>, String> {
        let mut weights = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("mix item {part:?} is not NAME=WEIGHT"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown profile {name:?} in the mix (sshd, openvpn, fortigate, teleport, guacamole, generic)"
                    )
                })?;
            let w = w
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("mix weight {w:?}: {e}"))?;
            weights.push((kind, w));
        }
        if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err("the mix weighs nothing".into());
        }
        Ok(weights)
    }

    fn draw_kind(&self, rng: &mut Rng) -> Kind {
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = rng.below(total);
        for (k, w) in &self.weights {
            if x < u64::from(*w) {
                return *k;
            }
            x -= u64::from(*w);
        }
        Kind::Sshd
    }
}

/// The tenant names a mix of `n` tenants uses (the collector's source must allow them).
pub fn tenant_name(i: usize) -> String {
    format!("CHU-{:02}", i + 1)
}

const FIRST: &[&str] = &[
    "n", "j", "m", "c", "l", "s", "p", "a", "e", "t", "f", "r", "v", "h", "b", "d",
];
const LAST: &[&str] = &[
    "garnier",
    "dupont",
    "lefebvre",
    "moreau",
    "girard",
    "bonnet",
    "fournier",
    "rousseau",
    "mercier",
    "blanc",
    "guerin",
    "muller",
    "henry",
    "roussel",
    "nicolas",
    "perrin",
    "morin",
    "mathieu",
    "clement",
    "gauthier",
    "dumont",
    "lopez",
    "fontaine",
    "chevalier",
];
const VENDORS: &[&str] = &[
    "radiologix",
    "biomedsys",
    "pacsedit",
    "labinfo",
    "dpisoft",
    "infusio",
    "imagerie",
    "telecomsante",
    "anesthesia",
    "stericlean",
    "pharmalog",
    "dialysys",
];
const TARGETS: &[&str] = &[
    "srv-pacs",
    "srv-lis",
    "srv-dpi",
    "srv-ris",
    "db-pharma",
    "srv-bloc",
    "srv-urg",
    "ws-irm",
];
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One person: a login and the vendor they work for.
struct Person {
    login: String,
    vendor: String,
}

fn person(mix: &Mix, p: usize) -> Person {
    let first = FIRST[p % FIRST.len()];
    let last = LAST[(p / FIRST.len()) % LAST.len()];
    let v = p % mix.vendors.max(1);
    let base = VENDORS[v % VENDORS.len()];
    let vendor = if v < VENDORS.len() {
        base.to_owned()
    } else {
        format!("{base}{}", v / VENDORS.len())
    };
    Person {
        login: format!("{first}{last}{}", p / (FIRST.len() * LAST.len()) + 1),
        vendor,
    }
}

fn ipv4(rng: &mut Rng) -> String {
    let nets = ["203.0.113", "198.51.100", "192.0.2"];
    format!(
        "{}.{}",
        nets[rng.below(3) as usize],
        1 + rng.below(254) as u8
    )
}

fn b64(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| B64[rng.below(64) as usize] as char)
        .collect()
}

fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A time of day on 2026-03-02 (Europe/Paris, +01:00) from a second offset.
struct Clock {
    secs: u64,
    micros: u64,
}

impl Clock {
    fn rfc3339(&self) -> String {
        let s = self.secs % 86_400;
        format!(
            "2026-03-02T{:02}:{:02}:{:02}.{:06}+01:00",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.micros
        )
    }

    fn hms(&self) -> String {
        let s = self.secs % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    fn utc_rfc3339(&self) -> String {
        let s = (self.secs + 86_400 - 3600) % 86_400;
        format!(
            "2026-03-02T{:02}:{:02}:{:02}.{:03}Z",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.micros / 1000
        )
    }

    /// Seconds since the epoch of this time (2026-03-02 is day 20514).
    fn epoch(&self) -> u64 {
        20_514 * 86_400 + (self.secs % 86_400) - 3600
    }
}

/// One message (no framing, no trailing LF) of profile `kind`, the `i`-th of the pool.
pub fn message(mix: &Mix, rng: &mut Rng, i: usize) -> (Kind, String) {
    let kind = mix.draw_kind(rng);
    let t = rng.below(mix.tenants.max(1) as u64) as usize;
    let tenant = tenant_name(t);
    let p = person(mix, rng.below(mix.persons.max(1) as u64) as usize);
    let clock = Clock {
        secs: 8 * 3600 + (i as u64) / 50,
        micros: rng.below(1_000_000),
    };
    let ts = clock.rfc3339();
    let addr = ipv4(rng);
    let port = 1024 + rng.below(64_000);
    let pid = 1000 + rng.below(60_000);
    let target = format!("{}-{:02}", rng.pick(TARGETS), 1 + rng.below(40));
    // Relays add timeQuality (rsyslog, logger); FortiGate sends its own header, without.
    let sd = format!("[timeQuality tzKnown=\"1\" isSynced=\"1\"][vigie@32473 tenant=\"{tenant}\"]");
    let fgt_sd = format!("[vigie@32473 tenant=\"{tenant}\"]");
    let site = format!("chu-{:02}.fr", t + 1);
    let mut m = String::with_capacity(384);
    match kind {
        Kind::Sshd => {
            let user = format!("ext-{}-{}", p.vendor, p.login);
            let host = format!("{target}.{site}");
            let _ = write!(m, "<86>1 {ts} {host} sshd {pid} - {sd} ");
            match rng.below(10) {
                0..=4 => {
                    let _ = write!(
                        m,
                        "Accepted publickey for {user} from {addr} port {port} ssh2: ED25519 SHA256:{}",
                        b64(rng, 43)
                    );
                }
                5 => {
                    let _ = write!(
                        m,
                        "Accepted keyboard-interactive/pam for {user} from {addr} port {port} ssh2"
                    );
                }
                6 => {
                    let _ = write!(m, "Failed password for {user} from {addr} port {port} ssh2");
                }
                7 => {
                    let _ = write!(
                        m,
                        "pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)",
                        2000 + rng.below(5000)
                    );
                }
                8 => {
                    let _ = write!(
                        m,
                        "Received disconnect from {addr} port {port}:11: disconnected by user"
                    );
                }
                _ => {
                    let _ = write!(m, "Disconnected from user {user} {addr} port {port}");
                }
            }
        }
        Kind::OpenVpn => {
            let cn = format!("{}.{}", p.login, p.vendor);
            let _ = write!(m, "<29>1 {ts} vpn-01.{site} openvpn {pid} - {sd} ");
            match rng.below(4) {
                0 | 1 => {
                    let _ = write!(
                        m,
                        "{addr}:{port} [{cn}] Peer Connection Initiated with [AF_INET]{addr}:{port}"
                    );
                }
                2 => {
                    let _ = write!(
                        m,
                        "{addr}:{port} TLS: Username/Password authentication succeeded for username '{cn}'"
                    );
                }
                _ => {
                    let _ = write!(
                        m,
                        "{cn}/{addr}:{port} SIGTERM[soft,remote-exit] received, client-instance exiting"
                    );
                }
            }
        }
        Kind::FortiGate => {
            let up = rng.below(2) == 0;
            let (logid, desc, action, reason) = if up {
                (
                    "0101039947",
                    "SSL VPN tunnel up",
                    "tunnel-up",
                    "tunnel established",
                )
            } else {
                (
                    "0101039948",
                    "SSL VPN tunnel down",
                    "tunnel-down",
                    "user logout",
                )
            };
            let _ = write!(
                m,
                "<189>1 {ts} fw-01.{site} - - - {fgt_sd} date=2026-03-02 time={hms} devname=\"FGT-CHU{t:02}\" \
                 eventtime={ev} tz=\"+0100\" logid=\"{logid}\" type=\"event\" subtype=\"vpn\" \
                 logdesc=\"{desc}\" action=\"{action}\" tunneltype=\"ssl-tunnel\" \
                 tunnelid={tid} remip={addr} user=\"{login}\" reason=\"{reason}\"",
                hms = clock.hms(),
                ev = clock.epoch() * 1_000_000_000 + clock.micros * 1000,
                tid = 1 + rng.below(100_000),
                login = p.login,
            );
        }
        Kind::Teleport => {
            let _ = write!(
                m,
                "<14>1 {ts} teleport.{site} teleport {pid} - {sd} \
                 {{\"event\":\"session.start\",\"code\":\"T2000I\",\"time\":\"{utc}\",\
                 \"user\":\"{login}@{vendor}\",\"login\":\"maint\",\"server_hostname\":\"{target}\",\
                 \"addr.remote\":\"{addr}:{port}\",\"sid\":\"{sid}\",\"proto\":\"ssh\"}}",
                utc = clock.utc_rfc3339(),
                login = p.login,
                vendor = p.vendor,
                sid = uuid(rng),
            );
        }
        Kind::Guacamole => {
            let _ = write!(
                m,
                "<134>1 {ts} guac.{site} guacamole {pid} - {sd} {hms}.{ms:03} [http-nio-8080-exec-{exec}] INFO  ",
                hms = clock.hms(),
                ms = clock.micros / 1000,
                exec = 1 + rng.below(10),
            );
            if rng.below(2) == 0 {
                let _ = write!(
                    m,
                    "o.a.g.r.auth.AuthenticationService - User \"{}.{}\" successfully authenticated from {addr}.",
                    p.login, p.vendor
                );
            } else {
                let _ = write!(
                    m,
                    "o.a.g.tunnel.TunnelRequestService - User \"{}.{}\" connected to connection \"{}\".",
                    p.login,
                    p.vendor,
                    1 + rng.below(300)
                );
            }
        }
        Kind::Generic => {
            let event = if rng.below(2) == 0 { "login" } else { "logout" };
            let _ = write!(
                m,
                "<134>1 {ts} jump.{site} acme-pam {pid} - {sd} event={event} user={} src={addr} \
                 dst={target} vendor={} session={} ticket=CHG{:07} mfa=totp",
                p.login,
                p.vendor,
                uuid(rng),
                rng.below(10_000_000),
            );
        }
    }
    (kind, m)
}

/// Messages drawn once, cycled through by the connections.
#[derive(Debug)]
pub struct Pool {
    pub messages: Vec<String>,
}

impl Pool {
    pub fn generate(mix: &Mix, seed: u64, size: usize) -> Pool {
        let mut rng = Rng::new(seed);
        let messages = (0..size.max(1))
            .map(|i| message(mix, &mut rng, i).1)
            .collect();
        Pool { messages }
    }

    /// The smallest, mean and largest message size in bytes.
    pub fn sizes(&self) -> (usize, f64, usize) {
        let min = self.messages.iter().map(String::len).min().unwrap_or(0);
        let max = self.messages.iter().map(String::len).max().unwrap_or(0);
        let mean = self.messages.iter().map(String::len).sum::<usize>() as f64
            / self.messages.len().max(1) as f64;
        (min, mean, max)
    }
}
