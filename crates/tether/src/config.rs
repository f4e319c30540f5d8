//! Every limit and timeout of the server, each with its documented default.
//!
//! A [`Config`] is built with [`crate::Builder`]; zero durations disable a timeout.
//!
//! Each setting is defined once, in the `settings!` invocation below: its name, type, kind
//! of value, default and doc comment. From that one definition come the field of [`Config`]
//! (with its doc), [`Config::default`], the setter of [`crate::Builder`] (through
//! `builder_setters!`, invoked in `server/builder.rs`), the table [`Config::SETTINGS`] and
//! [`Config::set`] / [`Config::get`], which take and give values as text (`75s`, `16384`,
//! `0.1`, `true`); `tether serve` builds its flags from the table.

use std::time::Duration;

/// What kind of value a setting holds, which decides how [`Config::set`] reads its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A duration: a whole number and a unit, possibly several (`500ms`, `75s`, `1m 30s`),
    /// or a bare `0`. Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d` (and their longer names, such
    /// as `sec` or `min`). Zero disables a timeout or a limit.
    Duration,
    /// A size in bytes, as a whole number (`16384`).
    Bytes,
    /// A count, as a whole number (`100`).
    Count,
    /// A fraction, as a decimal number (`0.1`).
    Fraction,
    /// On or off: `true` or `false`.
    Bool,
}

impl Kind {
    /// The placeholder for a value of this kind in usage lines: `D`, `BYTES`, `N`,
    /// `FRACTION` or `BOOL`.
    pub fn value_name(self) -> &'static str {
        match self {
            Kind::Duration => "D",
            Kind::Bytes => "BYTES",
            Kind::Count => "N",
            Kind::Fraction => "FRACTION",
            Kind::Bool => "BOOL",
        }
    }
}

/// The description of one setting of [`Config`], as listed by [`Config::SETTINGS`].
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    computed: bool,
    doc: &'static str,
    flag_help: Option<&'static str>,
    flag_default: Option<&'static str>,
}

impl Setting {
    /// The name of the field, of the builder setter and of the setting for [`Config::set`]:
    /// `idle_timeout`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The kind of value it holds.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The placeholder for its value in usage lines (`D`, `BYTES`, `N`, ...).
    pub fn value_name(&self) -> &'static str {
        self.kind.value_name()
    }

    /// The default as text, which [`Config::set`] accepts and which gives back the value of
    /// [`Config::default`]: `75s`, `16384`, `0.1`, `true`. For a default computed when the
    /// configuration is made (see [`Setting::is_computed`]) it says what it is computed from:
    /// `number of cores`.
    pub fn default(&self) -> &'static str {
        self.default
    }

    /// True when the default is computed at run time (from the machine) rather than fixed.
    pub fn is_computed(&self) -> bool {
        self.computed
    }

    /// The whole doc comment of the setting, as Markdown, one source line per line.
    pub fn doc(&self) -> String {
        let lines: Vec<&str> = self
            .doc
            .lines()
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        lines.join("\n").trim().to_owned()
    }

    /// The first sentence of the doc comment, on one line and without its final period: the
    /// help line of its flag.
    pub fn summary(&self) -> String {
        let doc = self.doc();
        let paragraph = doc.split("\n\n").next().unwrap_or("");
        let line = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        let sentence = line
            .split_once(". ")
            .map_or(line.as_str(), |(first, _)| first);
        sentence.strip_suffix('.').unwrap_or(sentence).to_owned()
    }

    /// True for an on/off setting, which a command line turns into a switch taking no value
    /// (see [`Setting::flag`]).
    pub fn is_switch(&self) -> bool {
        self.kind == Kind::Bool
    }

    /// The long flag of the setting on a command line (without the dashes): the name in
    /// kebab-case (`idle-timeout`); a switch that is on by default is turned off with
    /// `no-` before it (`no-keep-alive-header`).
    pub fn flag(&self) -> String {
        let name = self.name.replace('_', "-");
        if self.is_switch() && self.default == "true" {
            format!("no-{name}")
        } else {
            name
        }
    }

    /// The value that the switch of an on/off setting sets: the opposite of the default.
    pub fn switch_value(&self) -> &'static str {
        if self.default == "true" {
            "false"
        } else {
            "true"
        }
    }

    /// The help line of its flag: [`Setting::summary`], unless the definition gives one of
    /// its own (a switch that turns the setting off needs other words).
    pub fn flag_help(&self) -> String {
        self.flag_help.map_or_else(|| self.summary(), str::to_owned)
    }

    /// The default as the help of its flag shows it: [`Setting::default`], unless the
    /// definition gives other words (`sent` for the switch `no-keep-alive-header`).
    pub fn flag_default(&self) -> &'static str {
        self.flag_default.unwrap_or(self.default)
    }
}

/// How a field type is read from and written as text.
trait Value: Sized {
    /// The kind of value, unless the definition says otherwise (`as Bytes`).
    const KIND: Kind;
    /// Reads a value; the error says what was expected.
    fn parse(text: &str) -> Result<Self, String>;
    /// Writes the value so that [`Value::parse`] reads it back.
    fn show(&self) -> String;
}

macro_rules! whole_numbers {
    ($($ty:ty),*) => {
        $(
            impl Value for $ty {
                const KIND: Kind = Kind::Count;
                fn parse(text: &str) -> Result<Self, String> {
                    text.trim()
                        .parse()
                        .map_err(|_| format!("expected a whole number from 0 to {}", <$ty>::MAX))
                }
                fn show(&self) -> String {
                    self.to_string()
                }
            }
        )*
    };
}

whole_numbers!(u32, u64, usize);

impl Value for f64 {
    const KIND: Kind = Kind::Fraction;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("expected a number such as 0.1".to_owned()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for bool {
    const KIND: Kind = Kind::Bool;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for Duration {
    const KIND: Kind = Kind::Duration;
    fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn show(&self) -> String {
        let nanos = self.subsec_nanos();
        if self.is_zero() {
            "0".to_owned()
        } else if nanos == 0 {
            format!("{}s", self.as_secs())
        } else if nanos % 1_000_000 == 0 {
            format!("{}ms", self.as_millis())
        } else if nanos % 1_000 == 0 {
            format!("{}us", self.as_micros())
        } else {
            format!("{}ns", self.as_nanos())
        }
    }
}

/// Reads a duration as the settings and the command line write it: `500ms`, `75s`, `1m 30s`
/// (humantime's syntax) or a bare `0`, which disables a timeout.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tether::parse_duration("1m 15s"), Ok(Duration::from_secs(75)));
/// assert_eq!(tether::parse_duration("0"), Ok(Duration::ZERO));
/// assert!(tether::parse_duration("10").is_err(), "a number other than 0 needs a unit");
/// ```
///
/// # Errors
/// A message that says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 500ms, 2s or 1m, or 0"))
}

/// Defines [`Config`] and everything that comes from the list of its settings.
///
/// Each setting is written as its doc comment, optionally `#[flag_help = "..."]` and
/// `#[flag_default = "..."]` (other words for its command-line flag), then
/// `name: Type = "default"`, where `Type as Kind` overrides the kind the type implies
/// (`usize as Bytes`) and `= "what" => expression` gives a default computed at run time
/// (`"what"` names it, and [`Config::set`] takes it back).
macro_rules! settings {
    (@kind $ty:ty) => { <$ty as Value>::KIND };
    (@kind $ty:ty, $kind:ident) => { Kind::$kind };
    (@default $ty:ty, $text:literal) => {
        match <$ty as Value>::parse($text) {
            Ok(value) => value,
            Err(e) => panic!("the default of a setting does not parse: {e}"),
        }
    };
    (@default $ty:ty, $text:literal, $computed:expr) => { $computed };
    (@set $ty:ty, $value:ident, $text:literal) => { <$ty as Value>::parse($value)? };
    (@set $ty:ty, $value:ident, $text:literal, $computed:expr) => {
        if $value.trim() == $text { $computed } else { <$ty as Value>::parse($value)? }
    };
    (@computed) => { false };
    (@computed $computed:expr) => { true };
    (@option) => { None };
    (@option $text:literal) => { Some($text) };
    (
        $(#[$meta:meta])*
        pub struct Config {
            $(
                $(#[doc = $doc:literal])*
                $(#[flag_help = $flag_help:literal])?
                $(#[flag_default = $flag_default:literal])?
                $name:ident: $ty:ty $(as $kind:ident)? = $default:literal $(=> $computed:expr)?,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct Config {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Default: ", $default, ".")]
                pub $name: $ty,
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($name: settings!(@default $ty, $default $(, $computed)?),)*
                }
            }
        }

        impl Config {
            /// Every setting, in the order of the fields: name, kind of value, default and
            /// doc, for command lines, configuration files and documentation.
            pub const SETTINGS: &'static [Setting] = &[
                $(
                    Setting {
                        name: stringify!($name),
                        kind: settings!(@kind $ty $(, $kind)?),
                        default: $default,
                        computed: settings!(@computed $($computed)?),
                        doc: concat!($($doc, "\n",)*),
                        flag_help: settings!(@option $($flag_help)?),
                        flag_default: settings!(@option $($flag_default)?),
                    },
                )*
            ];

            /// Sets the setting `name` (as in [`Config::SETTINGS`]: `idle_timeout`) from
            /// text: a duration such as `75s`, `100ms` or `0`, a whole number for sizes and
            /// counts, a decimal number for fractions, `true` or `false`. The error says
            /// what was expected, without naming the setting; ranges are checked later, by
            /// [`Config::validate`].
            pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
                match name {
                    $(
                        stringify!($name) => {
                            self.$name = settings!(@set $ty, value, $default $(, $computed)?);
                        }
                    )*
                    _ => return Err(format!("unknown setting {name:?}")),
                }
                Ok(())
            }

            /// The value of the setting `name` as text that [`Config::set`] reads back
            /// (`75s`, `16384`), or `None` for an unknown name.
            pub fn get(&self, name: &str) -> Option<String> {
                match name {
                    $(stringify!($name) => Some(Value::show(&self.$name)),)*
                    _ => None,
                }
            }
        }

        /// The setters of [`crate::Builder`], one per setting, with the doc of the field;
        /// invoked inside `impl Builder` (whose `config` field they set).
        macro_rules! builder_setters {
            () => {
                $(
                    $(#[doc = $doc])*
                    #[doc = ""]
                    #[doc = concat!("Default: ", $default, ".")]
                    pub fn $name(mut self, value: $ty) -> Self {
                        self.config.$name = value;
                        self
                    }
                )*
            };
        }
        pub(crate) use builder_setters;
    };
}

settings! {
    /// Server settings. Construct it through [`crate::Server::builder`].
    ///
    /// | setting | default | on breach |
    /// |---|---|---|
    /// | `workers` | one per core | |
    /// | `backlog` | 4096 | kernel refuses SYNs |
    /// | `idle_timeout` | 75 s (advertised) | close, silently |
    /// | `idle_grace` | 1 s (added to `idle_timeout` before the real close) | |
    /// | `header_timeout` | 10 s from the first byte of each head | `408`, close |
    /// | `handshake_timeout` | 10 s from the accept, TLS only | close |
    /// | `body_timeout` | 30 s without progress | `408`, close |
    /// | `write_timeout` | 30 s without progress | close |
    /// | `max_requests` | 10,000 per connection (0 = unlimited) | `Connection: close` on the last |
    /// | `max_lifetime` | off | `Connection: close` at the next response |
    /// | `limit_jitter` | 0.1 (up to 10% earlier) | |
    /// | `max_head_size` | 16 KiB | `431` (`414` while in the request line) |
    /// | `max_headers` | 100 | `431` |
    /// | `max_uri_len` | 8 KiB | `414` |
    /// | `max_body_size` | 1 MiB | `413` |
    /// | `drain_bytes` | 256 KiB | `Connection: close` |
    /// | `drain_time` | 1 s | `Connection: close` |
    /// | `linger_timeout` | 2 s | |
    /// | `keep_alive_header` | on | |
    /// | `read_buffer_size` | 8 KiB | |
    /// | `buffer_pool` | 256 per worker | |
    /// | `park_after` | 1 s idle (0 = never) | the connection gives up its task until its next request |
    /// | `max_idle_tasks` | 256 per worker | idle connections beyond it park after 100 ms |
    /// | `max_connections` | from `RLIMIT_NOFILE` | evict the oldest idle, else `503` |
    /// | `max_connections_per_ip` | off | `429` |
    /// | `min_idle_age` | 1 s | not evicted or drained before |
    /// | `drain_window` | 5 s | idle connections close (phase 1 of a shutdown) |
    /// | `shutdown_timeout` | 30 s | what remains is cut (phase 2) |
    /// | `tls_tickets` | on | |
    /// | `tls_session_cache` | 4,096 sessions | the least recently used is forgotten |
    ///
    /// Every setting can also be read and written as text by name, with [`Config::set`] and
    /// [`Config::get`]; [`Config::SETTINGS`] describes them all.
    #[derive(Clone, Debug)]
    pub struct Config {
        /// Worker threads, each with its own current-thread runtime and listening socket.
        workers: usize = "number of cores" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        /// Listen backlog passed to `listen(2)`.
        backlog: u32 = "4096",
        /// Idle time allowed between requests, advertised in `Keep-Alive: timeout=` (0 = no
        /// limit).
        idle_timeout: Duration = "75s",
        /// Extra time after `idle_timeout` before an idle connection is really closed. A
        /// client honouring the advertised timeout thus never races the close.
        idle_grace: Duration = "1s",
        /// Time allowed to receive a whole request head, counted from its first byte (0 = no
        /// limit). A new connection must also send its first byte within this time.
        header_timeout: Duration = "10s",
        /// Time allowed for a TLS handshake, from the accept (0 = no limit); a client that
        /// stalls in it is closed as `handshake_timeout`.
        handshake_timeout: Duration = "10s",
        /// Time allowed without progress while reading a request body (0 = no limit).
        body_timeout: Duration = "30s",
        /// Time allowed without progress while writing a response (0 = no limit). Progress
        /// is the socket taking more of the response: with a full send buffer, Linux reports
        /// it writable again only once about a third of the buffer has drained, so a client
        /// must read that much within the timeout (like nginx's `send_timeout`). On loopback,
        /// where the buffer grows to 4 MiB, that is about 1.4 MB; on a slow network link the
        /// buffer stays far smaller.
        write_timeout: Duration = "30s",
        /// Requests served per connection before it is closed (0 = unlimited).
        max_requests: u64 = "10000",
        /// Age after which a connection is closed at its next response (0 = off).
        max_lifetime: Duration = "0",
        /// Fraction (0 to 0.5) by which `max_requests` and `max_lifetime` are randomly
        /// lowered per connection. Connections opened together thus do not reconnect
        /// together.
        limit_jitter: f64 = "0.1",
        /// Largest request head (request line and headers) in bytes.
        max_head_size: usize as Bytes = "16384",
        /// Most header fields in one request head (at most 512).
        max_headers: usize = "100",
        /// Longest request target in bytes.
        max_uri_len: usize as Bytes = "8192",
        /// Largest request body in bytes.
        max_body_size: u64 as Bytes = "1048576",
        /// Bytes of an unread request body the server discards to keep the connection.
        drain_bytes: u64 as Bytes = "262144",
        /// Time the server spends discarding an unread request body to keep the connection.
        drain_time: Duration = "1s",
        /// Longest time spent reading and discarding input after the server shut down its
        /// side.
        linger_timeout: Duration = "2s",
        /// Send `Keep-Alive: timeout=N, max=M` on every persistent response.
        #[flag_help = "Do not send `Keep-Alive: timeout=N, max=M` on persistent responses"]
        #[flag_default = "sent"]
        keep_alive_header: bool = "true",
        /// Initial size of a connection's read buffer in bytes (at least 512).
        read_buffer_size: usize as Bytes = "8192",
        /// Buffers each worker keeps for reuse; idle connections hold none of their own.
        buffer_pool: usize = "256",
        /// Idle time after which a keep-alive connection gives up its task and waits as a
        /// bare socket until its next request (0 = never). It gives up its task, timer and
        /// runtime registration and waits in its worker's own epoll set, resuming as a new
        /// task at its next request, its idle deadline or a drain or eviction. Only
        /// connections idle this long pay the resumption (a task and a socket registration),
        /// and an idle connection then costs a few hundred bytes instead of a task.
        park_after: Duration = "1s",
        /// Idle connections a worker holds in tasks before the ones going idle park after
        /// 100 ms. More exactly, they park after [`crate::PARK_AFTER_UNDER_PRESSURE`] (or
        /// `park_after`, if shorter). This bounds the memory of a crowd of connections that
        /// have just gone idle (a reconnect storm, a wave of clients) without parking the
        /// connections of a busy client between its requests.
        max_idle_tasks: usize = "256",
        /// Connections over all workers (0 = nine tenths of the soft `RLIMIT_NOFILE`, less
        /// 32). At the limit the least recently used idle connection of the server (idle for
        /// at least `min_idle_age`, on whichever worker holds it) is closed for the new one;
        /// when there is none the new connection gets `503` with `Retry-After: 1` and is
        /// closed.
        max_connections: usize = "0",
        /// Connections per client IP address, beyond which a new one gets `429` (0 = no
        /// limit).
        max_connections_per_ip: usize = "0",
        /// Idle time before a connection may be evicted at the limit or closed by a drain.
        /// A request already on its way is thus not met by a close (like nginx's
        /// `keepalive_min_timeout`).
        min_idle_age: Duration = "1s",
        /// First phase of a shutdown: connections stay open, responses carry `Connection:
        /// close`, and idle connections close once idle for `min_idle_age`.
        drain_window: Duration = "5s",
        /// Hard deadline of a shutdown, counted from its start: what remains is cut.
        shutdown_timeout: Duration = "30s",
        /// Resumption of TLS sessions by tickets (TLS 1.3, and TLS 1.2 clients that ask):
        /// the client keeps its session, sealed with a key only the server holds, which
        /// rotates every 6 hours. Used with a certificate given by
        /// [`crate::Builder::tls_certificate`].
        tls_tickets: bool = "true",
        /// TLS sessions the server keeps for resumption by session ID (TLS 1.2 clients that
        /// do not take tickets, and every client with `tls_tickets` off); 0 keeps none.
        /// Used with a certificate given by [`crate::Builder::tls_certificate`].
        tls_session_cache: usize = "4096",
    }
}

/// How long a connection stays idle in its task before it parks when its worker already holds
/// [`Config::max_idle_tasks`] idle tasks: longer than the gap between the requests of a
/// client in a request loop, so that such a client does not pay a resumption per request.
pub const PARK_AFTER_UNDER_PRESSURE: Duration = Duration::from_millis(100);

pub use crate::proto::parse::MAX_HEADERS_CAP;

impl Config {
    /// Checks ranges; the builder calls this before binding.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAP {
            return Err(format!("max_headers must be 1..={MAX_HEADERS_CAP}"));
        }
        if self.max_head_size < 64 {
            return Err("max_head_size must be at least 64 bytes".into());
        }
        if !(0.0..=0.5).contains(&self.limit_jitter) {
            return Err("limit_jitter must be within 0.0..=0.5".into());
        }
        if self.read_buffer_size < 512 {
            return Err("read_buffer_size must be at least 512 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_as_text_give_the_defaults() {
        let default = Config::default();
        for s in Config::SETTINGS {
            // From a configuration where the setting holds something else.
            let mut c = Config::default();
            let other = match s.kind() {
                Kind::Duration => "3h",
                Kind::Bool => s.switch_value(),
                Kind::Fraction => "0.25",
                Kind::Bytes | Kind::Count => "12345",
            };
            c.set(s.name(), other).expect("another value");
            assert_ne!(c.get(s.name()), default.get(s.name()), "{}", s.name());
            c.set(s.name(), s.default())
                .unwrap_or_else(|e| panic!("{}: {e}", s.name()));
            assert_eq!(c.get(s.name()), default.get(s.name()), "{}", s.name());
            if !s.is_computed() {
                assert_eq!(default.get(s.name()).as_deref(), Some(s.default()));
            }
        }
        assert_eq!(
            format!("{:?}", {
                let mut c = Config::default();
                for s in Config::SETTINGS {
                    c.set(s.name(), s.default()).expect("default");
                }
                c
            }),
            format!("{default:?}")
        );
    }

    #[test]
    fn values_as_text() {
        let mut c = Config::default();
        c.set("idle_timeout", "100ms").expect("ms");
        assert_eq!(c.idle_timeout, Duration::from_millis(100));
        assert_eq!(c.get("idle_timeout").as_deref(), Some("100ms"));
        c.set("idle_timeout", "1m 30s").expect("two parts");
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.get("idle_timeout").as_deref(), Some("90s"));
        c.set("max_lifetime", "0").expect("zero");
        assert_eq!(c.max_lifetime, Duration::ZERO);
        c.set("body_timeout", "1500us").expect("us");
        assert_eq!(c.get("body_timeout").as_deref(), Some("1500us"));
        c.set("max_body_size", "17").expect("size");
        assert_eq!(c.max_body_size, 17);
        c.set("limit_jitter", "0.5").expect("fraction");
        assert_eq!(c.limit_jitter, 0.5);
        c.set("keep_alive_header", "false").expect("bool");
        assert!(!c.keep_alive_header);
        c.set("workers", "3").expect("workers");
        assert_eq!(c.workers, 3);
        c.set("workers", "number of cores")
            .expect("computed default");
        assert_eq!(c.workers, Config::default().workers);

        for (name, bad) in [
            ("idle_timeout", "5parsecs"),
            ("idle_timeout", "10"),
            ("idle_timeout", "-1s"),
            ("idle_timeout", ""),
            ("idle_timeout", "99999999999999999999d"),
            ("backlog", "-1"),
            ("backlog", "many"),
            ("max_requests", "1.5"),
            ("limit_jitter", "NaN"),
            ("keep_alive_header", "maybe"),
            ("no_such_setting", "1"),
        ] {
            assert!(c.set(name, bad).is_err(), "{name} = {bad:?}");
        }
        let e = c.set("header_timeout", "10").expect_err("no unit");
        assert!(e.contains("expected a duration"), "{e}");
        assert_eq!(c.get("no_such_setting"), None);
    }

    #[test]
    fn durations_units_and_zero() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m 15s"), Ok(Duration::from_secs(75)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_reject_junk() {
        assert!(parse_duration("5parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(
            parse_duration("10").is_err(),
            "a bare number other than 0 needs a unit"
        );
    }

    #[test]
    fn setting_descriptions() {
        let s = |name: &str| {
            *Config::SETTINGS
                .iter()
                .find(|s| s.name() == name)
                .expect("a setting")
        };
        let idle = s("idle_timeout");
        assert_eq!(idle.flag(), "idle-timeout");
        assert_eq!(idle.value_name(), "D");
        assert_eq!(
            idle.summary(),
            "Idle time allowed between requests, advertised in `Keep-Alive: timeout=` (0 = no limit)"
        );
        assert_eq!(idle.flag_help(), idle.summary());
        let grace = s("idle_grace");
        assert_eq!(
            grace.summary(),
            "Extra time after `idle_timeout` before an idle connection is really closed"
        );
        assert!(grace.doc().ends_with("never races the close."));
        let keep = s("keep_alive_header");
        assert_eq!(keep.flag(), "no-keep-alive-header");
        assert_eq!(keep.switch_value(), "false");
        assert_eq!(keep.flag_default(), "sent");
        assert_eq!(s("max_head_size").value_name(), "BYTES");
        assert_eq!(s("limit_jitter").value_name(), "FRACTION");
        assert_eq!(s("workers").kind(), Kind::Count);
        assert!(s("workers").is_computed());
        for s in Config::SETTINGS {
            assert!(
                !s.summary().is_empty() && !s.summary().contains('\n'),
                "{}",
                s.name()
            );
        }
    }

    /// The table in the doc comment of `Config` lists every setting, in order.
    #[test]
    fn doc_table_lists_every_setting() {
        let source = include_str!("config.rs");
        let table: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("/// | `"))
            .filter_map(|l| l.split_once('`').map(|(name, _)| name))
            .collect();
        let names: Vec<&str> = Config::SETTINGS.iter().map(|s| s.name()).collect();
        assert_eq!(table, names);
    }
}
