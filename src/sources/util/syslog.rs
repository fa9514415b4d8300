//! Syslog messages, RFC 5424 and RFC 3164 (parsed by `syslog_loose`, as
//! Vector does), and the fields Vector's syslog decoder gives them:
//! `message`, `timestamp`, `hostname`, `severity`, `facility`, `version`
//! (5424 only), `appname`, `procid` (an integer when numeric), `msgid`, and
//! each structured-data element as an object at the top level, named by its
//! id, holding its parameters as strings.
//!
//! An RFC 3164 timestamp has no year and no zone: the year is the current
//! one, except that a December message read in January is from last year;
//! the zone is the local one of the machine tapline runs on. Both as Vector.

use chrono::{DateTime, Datelike, Utc};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, Variant};

use crate::event::{ObjectMap, Value};

/// Parse one message (without its framing) into its fields; invalid UTF-8
/// is replaced, as Vector's lossy default does. `Err` when neither RFC
/// recognizes it. `timestamp` is left out when the message has none (the
/// source sets the time received).
pub fn decode(frame: &[u8]) -> Result<ObjectMap, String> {
    let text = String::from_utf8_lossy(frame);
    let message = syslog_loose::parse_message_with_year_exact(text.trim(), year_of, Variant::Either)
        .map_err(|_| "not a syslog message (RFC 5424 or RFC 3164)".to_string())?;
    Ok(fields(message))
}

/// The year of an RFC 3164 date: this year, or last year for December seen in January.
fn year_of((month, _day, _hour, _minute, _second): IncompleteDate) -> i32 {
    year_at(Utc::now(), month)
}

fn year_at(now: DateTime<Utc>, month: u32) -> i32 {
    if now.month() == 1 && month == 12 {
        now.year() - 1
    } else {
        now.year()
    }
}

/// The message's fields, named as Vector names them.
fn fields(message: Message<&str>) -> ObjectMap {
    let mut log = ObjectMap::new();
    log.insert("message".into(), message.msg.into());
    if let Some(timestamp) = message.timestamp {
        log.insert("timestamp".into(), Value::Timestamp(timestamp.with_timezone(&Utc)));
    }
    if let Some(hostname) = message.hostname {
        log.insert("hostname".into(), hostname.into());
    }
    if let Some(severity) = message.severity {
        log.insert("severity".into(), severity.as_str().into());
    }
    if let Some(facility) = message.facility {
        log.insert("facility".into(), facility.as_str().into());
    }
    if let Protocol::RFC5424(version) = message.protocol {
        log.insert("version".into(), Value::Integer(i64::from(version)));
    }
    if let Some(appname) = message.appname {
        log.insert("appname".into(), appname.into());
    }
    if let Some(msgid) = message.msgid {
        log.insert("msgid".into(), msgid.into());
    }
    if let Some(procid) = message.procid {
        let value = match procid {
            ProcId::PID(pid) => Value::Integer(i64::from(pid)),
            ProcId::Name(name) => name.into(),
        };
        log.insert("procid".into(), value);
    }
    for element in &message.structured_data {
        // `params` undoes the escapes of RFC 5424 (`\"`, `\\`, `\]`).
        let params: ObjectMap = element.params().map(|(name, value)| ((*name).into(), Value::from(value))).collect();
        log.insert(element.id.into(), Value::Object(params));
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(pairs: &[(&str, Value)]) -> ObjectMap {
        pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect()
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 4242 ID47 [exampleSDID@32473 iut="3" eventSource="Application"][origin ip="192.0.2.1"] An application event"#;
        let log = decode(line).unwrap();
        let expected = object(&[
            ("message", "An application event".into()),
            ("timestamp", Value::Timestamp("2003-10-11T22:14:15.003Z".parse().unwrap())),
            ("hostname", "mymachine.example.com".into()),
            ("severity", "notice".into()),
            ("facility", "local4".into()),
            ("version", Value::Integer(1)),
            ("appname", "evntslog".into()),
            ("msgid", "ID47".into()),
            ("procid", Value::Integer(4242)),
            ("exampleSDID@32473", Value::Object(object(&[("iut", "3".into()), ("eventSource", "Application".into())]))),
            ("origin", Value::Object(object(&[("ip", "192.0.2.1".into())]))),
        ]);
        assert_eq!(log, expected);
    }

    #[test]
    fn rfc3164_with_tag_and_pid() {
        let line = b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8";
        let log = decode(line).unwrap();
        assert_eq!(log.get("appname"), Some(&Value::from("su")));
        assert_eq!(log.get("procid"), Some(&Value::Integer(230)));
        assert_eq!(log.get("hostname"), Some(&Value::from("mymachine")));
        assert_eq!(log.get("severity"), Some(&Value::from("crit")));
        assert_eq!(log.get("facility"), Some(&Value::from("auth")));
        assert_eq!(log.get("message"), Some(&Value::from("'su root' failed for lonvick on /dev/pts/8")));
        assert_eq!(log.get("version"), None);
        let Some(Value::Timestamp(at)) = log.get("timestamp") else { panic!("no timestamp: {log:?}") };
        let local = at.with_timezone(&chrono::Local);
        assert_eq!((local.month(), local.day(), local.format("%H:%M:%S").to_string()), (10, 11, "22:14:15".to_string()));
    }

    #[test]
    fn a_december_date_read_in_january_is_last_year() {
        let january: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(year_at(january, 12), 2025);
        assert_eq!(year_at(january, 1), 2026);
        let march: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
        assert_eq!(year_at(march, 12), 2026);
    }

    #[test]
    fn a_kong_entry_as_the_message() {
        let line = br#"<14>Dec  2 01:20:14 gw kong: {"request":{"id":"abc","method":"GET"}}"#;
        let log = decode(line).unwrap();
        assert_eq!(log.get("appname"), Some(&Value::from("kong")));
        assert_eq!(log.get("message"), Some(&Value::from(r#"{"request":{"id":"abc","method":"GET"}}"#)));
    }
}
