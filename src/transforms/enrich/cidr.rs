//! `cidr` tables: an IP address → the row of the longest prefix holding it
//! (IPv4 and IPv6), from a CSV or JSON file with one column of prefixes.
//!
//! One hash map per prefix length present, probed from the longest length
//! to the shortest: a handful of probes for the usual tables (a few lengths).

use std::net::IpAddr;
use std::path::PathBuf;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::file::{Data, Format, TableFile};
use super::{write, Refresh, Row, Table};
use crate::event::{Event, FieldPath};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrTableConfig {
    /// Relative paths are taken from tapline's working directory.
    pub path: PathBuf,
    #[serde(default)]
    pub format: Option<Format>,
    /// The column holding the prefix (`10.1.0.0/16`, `2001:db8::/32`; a bare IP is one address).
    #[serde(default = "default_cidr_column")]
    pub cidr_column: String,
    /// The event field holding the IP.
    pub field: String,
    /// The columns to add; default: every column but the prefix.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub prefix: String,
}

fn default_cidr_column() -> String {
    "cidr".into()
}

impl CidrTableConfig {
    pub fn build(&self) -> Result<CidrTable, String> {
        let field = FieldPath::parse(&self.field).map_err(|e| format!("`field`: {e}"))?;
        let mut file = TableFile::new(&self.path, self.format);
        let table = file.load(|data| Prefixes::new(data, &self.cidr_column, self.columns.as_deref(), &self.prefix))?;
        Ok(CidrTable { file, field, config: self.clone(), table })
    }
}

pub struct CidrTable {
    file: TableFile,
    field: FieldPath,
    config: CidrTableConfig,
    table: Prefixes,
}

impl Table for CidrTable {
    fn enrich(&mut self, event: &mut Event) -> bool {
        let row = {
            let Some(text) = self.field.get(event) else { return false };
            let Some(ip) = parse_ip(&text) else { return false };
            self.table.find(ip)
        };
        let Some(row) = row else { return false };
        write(&self.table.fields, row, event);
        true
    }

    fn refresh(&mut self) -> Refresh {
        let c = &self.config;
        self.file.refresh(&mut self.table, |data| Prefixes::new(data, &c.cidr_column, c.columns.as_deref(), &c.prefix))
    }

    fn refreshes(&self) -> bool {
        true
    }
}

/// An address as events carry it; an IPv4-mapped IPv6 address is its IPv4 one.
fn parse_ip(text: &str) -> Option<IpAddr> {
    match text.trim().parse().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// Rows by prefix, for longest prefix match.
pub struct Prefixes {
    /// (length, network → row), longest first.
    v4: Vec<(u8, FxHashMap<u32, u32>)>,
    v6: Vec<(u8, FxHashMap<u128, u32>)>,
    rows: Vec<Row>,
    fields: Vec<FieldPath>,
}

fn mask4(ip: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        ip & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(ip: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        ip & (u128::MAX << (128 - u32::from(len)))
    }
}

/// `10.1.0.0/16`, `2001:db8::/32`, or a bare address; host bits are ignored.
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| format!("`{text}` is not a CIDR prefix (an IP address, then optionally / and a length)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(len) => {
            len.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?
        }
    };
    Ok((ip, len))
}

impl Prefixes {
    fn new(data: Data, cidr_column: &str, columns: Option<&[String]>, prefix: &str) -> Result<Prefixes, String> {
        let at = data.position(cidr_column, "cidr_column")?;
        let (value_at, fields) = data.select(columns, &[cidr_column.to_string()], prefix)?;
        let mut v4: FxHashMap<u8, FxHashMap<u32, u32>> = FxHashMap::default();
        let mut v6: FxHashMap<u8, FxHashMap<u128, u32>> = FxHashMap::default();
        let mut rows = Vec::with_capacity(data.rows.len());
        for row in data.rows {
            let text = row.cells[at].as_deref().ok_or_else(|| format!("{}: the column `{cidr_column}` is empty", row.at))?;
            let (ip, len) = parse_cidr(text).map_err(|e| format!("{}: {e}", row.at))?;
            let index = u32::try_from(rows.len()).map_err(|_| "too many rows".to_string())?;
            // The same prefix twice: the last row wins.
            match ip {
                IpAddr::V4(ip) => v4.entry(len).or_default().insert(mask4(ip.into(), len), index),
                IpAddr::V6(ip) => v6.entry(len).or_default().insert(mask6(ip.into(), len), index),
            };
            rows.push(row.take(&value_at));
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        Ok(Prefixes { v4, v6, rows, fields })
    }

    /// The row of the longest prefix holding `ip`.
    pub fn find(&self, ip: IpAddr) -> Option<&Row> {
        let index = match ip {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.v4.iter().find_map(|(len, networks)| networks.get(&mask4(ip, *len)))
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.v6.iter().find_map(|(len, networks)| networks.get(&mask6(ip, *len)))
            }
        }?;
        self.rows.get(*index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, record, run, tags};
    use super::*;
    use crate::component::{Transform, TransformConfig};
    use crate::event::RequestRecord;

    const NETWORKS: &str = "cidr,zone,team\n\
        10.0.0.0/8,corp,\n\
        10.1.0.0/16,eu-west,payments\n\
        10.1.2.0/24,eu-west-1a,\n\
        10.1.2.3,,edge\n\
        0.0.0.0/0,internet,\n\
        2001:db8::/32,v6-corp,\n\
        2001:db8:1::/48,v6-eu,ipv6-team\n\
        ::/0,v6-internet,\n";

    fn table(dir: &std::path::Path, text: &str, options: &str) -> crate::component::Result<Box<dyn Transform>> {
        std::fs::write(dir.join("n.csv"), text).unwrap();
        config(&format!("[[tables]]\ntype = \"cidr\"\npath = \"{}/n.csv\"\nfield = \"server_ip\"\n{options}\n", dir.display())).build()
    }

    fn zone(t: &mut Box<dyn Transform>, ip: &str) -> Vec<(String, String)> {
        let (out, _) = run(t, vec![record(RequestRecord { server_ip: Some(ip.into()), ..Default::default() })]);
        tags(&out[0])
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_longest_prefix_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path(), NETWORKS, "").unwrap();
        assert_eq!(zone(&mut t, "10.1.2.3"), pairs(&[("team", "edge")]), "the /32 row has no zone: none is written");
        assert_eq!(zone(&mut t, "10.1.2.4"), pairs(&[("zone", "eu-west-1a")]));
        assert_eq!(zone(&mut t, "10.1.3.4"), pairs(&[("team", "payments"), ("zone", "eu-west")]));
        assert_eq!(zone(&mut t, "10.200.0.1"), pairs(&[("zone", "corp")]));
        assert_eq!(zone(&mut t, "192.0.2.1"), pairs(&[("zone", "internet")]));
        assert_eq!(zone(&mut t, "::ffff:10.1.3.4"), pairs(&[("team", "payments"), ("zone", "eu-west")]), "IPv4-mapped");
        assert_eq!(zone(&mut t, "2001:db8:1:2::5"), pairs(&[("team", "ipv6-team"), ("zone", "v6-eu")]));
        assert_eq!(zone(&mut t, "2001:db8:2::5"), pairs(&[("zone", "v6-corp")]));
        assert_eq!(zone(&mut t, "2001:db9::1"), pairs(&[("zone", "v6-internet")]));
    }

    #[test]
    fn misses_leave_the_event_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path(), "cidr,zone\n10.0.0.0/8,corp\n2001:db8::/32,v6\n", "columns = [\"zone\"]\nprefix = \"net_\"").unwrap();
        let event = |ip: Option<&str>| record(RequestRecord { server_ip: ip.map(str::to_string), ..Default::default() });
        let (out, misses) = run(
            &mut t,
            vec![event(Some("10.9.9.9")), event(Some("11.0.0.1")), event(Some("not an ip")), event(None), event(Some("2001:db8::1"))],
        );
        assert_eq!(tags(&out[0]), pairs(&[("net_zone", "corp")]));
        assert!(out[1..4].iter().all(|e| tags(e).is_empty()));
        assert_eq!(tags(&out[4]), pairs(&[("net_zone", "v6")]));
        assert_eq!(misses, 3);
    }

    #[test]
    fn prefixes_are_checked_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("{}/n.csv", dir.path().display());
        let err = |text: &str, options: &str| table(dir.path(), text, options).err().unwrap().to_string();
        assert_eq!(
            err("cidr,zone\n10.0.0.0/8,a\n10.0.0/8,b\n", ""),
            format!("table 1 (`cidr`): {file}: line 3: `10.0.0/8` is not a CIDR prefix (an IP address, then optionally / and a length)")
        );
        assert_eq!(
            err("cidr,zone\n10.0.0.0/33,a\n", ""),
            format!("table 1 (`cidr`): {file}: line 2: `10.0.0.0/33`: the prefix length must be 0 to 32")
        );
        assert_eq!(
            err("cidr,zone\n::/129,a\n", ""),
            format!("table 1 (`cidr`): {file}: line 2: `::/129`: the prefix length must be 0 to 128")
        );
        assert_eq!(
            err("net,zone\n10.0.0.0/8,a\n", ""),
            format!("table 1 (`cidr`): {file}: cidr_column `cidr` is not in the file (it has: net, zone)")
        );
        assert!(table(dir.path(), "net,zone\n10.0.0.0/8,a\n", "cidr_column = \"net\"").is_ok());
    }

    #[test]
    fn masks() {
        assert_eq!(mask4(0x0a01_0203, 0), 0);
        assert_eq!(mask4(0x0a01_0203, 16), 0x0a01_0000);
        assert_eq!(mask4(0x0a01_0203, 32), 0x0a01_0203);
        assert_eq!(mask6(u128::MAX, 0), 0);
        assert_eq!(mask6(u128::MAX, 128), u128::MAX);
        assert_eq!(parse_cidr("10.1.2.3/16"), Ok(("10.1.2.3".parse().unwrap(), 16)), "host bits: masked when indexed");
    }
}
