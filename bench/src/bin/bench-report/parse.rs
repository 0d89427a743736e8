//! Parsers of the text the benchmark scripts print (pktgen/bench/txonly-vs-testpmd.sh,
//! bench/run-dataplane.sh) and of bench-e2e's JSON.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// One round of the TX comparison, Mpps (`None`: the script printed n/a).
#[derive(Debug, Clone, PartialEq)]
pub struct TxRound {
    pub round: String,
    pub testpmd: Option<f64>,
    pub pktgen: Option<f64>,
    pub ratio: Option<f64>,
}

/// The TX comparison's rounds, the median row last.
pub fn txonly(text: &str) -> Result<Vec<TxRound>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() != 4 || !(t[0] == "median" || t[0].parse::<u32>().is_ok()) {
            continue;
        }
        rows.push(TxRound {
            round: t[0].to_owned(),
            testpmd: number(t[1]),
            pktgen: number(t[2]),
            ratio: number(t[3]),
        });
    }
    if !rows.iter().any(|r| r.round == "median") {
        bail!("no median row in the TX comparison's output");
    }
    Ok(rows)
}

/// One row of bench/run-dataplane.sh's table.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneRow {
    pub clients: u64,
    pub round: u32,
    pub io: Option<f64>,
    pub swap: Option<f64>,
    /// The appliance build's median Mpps, forwarded/elapsed Mpps and ratio to 5tswap.
    pub appliance: Option<f64>,
    pub appliance_avg: Option<f64>,
    pub ratio: Option<f64>,
    pub load1: Option<f64>,
    /// The script's check column ("appl:ok rss=... mbufs=... capacity=...").
    pub check: String,
}

/// The per-K rows of bench/run-dataplane.sh (one appliance build) and its "load before" /
/// "load after" lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataplane {
    pub rows: Vec<DataplaneRow>,
    pub load_before: Option<String>,
    pub load_after: Option<String>,
    pub machine: Option<String>,
}

pub fn dataplane(text: &str) -> Result<Dataplane> {
    let mut d = Dataplane::default();
    let mut columns: Option<Vec<String>> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("load before: ") {
            d.load_before = Some(rest.trim().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("load after: ") {
            d.load_after = Some(rest.trim().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("machine: ") {
            d.machine = Some(rest.trim().to_owned());
            continue;
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.first() == Some(&"K") && t.get(1) == Some(&"round") {
            columns = Some(t.iter().map(|s| (*s).to_owned()).collect());
            continue;
        }
        let Some(cols) = &columns else { continue };
        let Ok(clients) = t.first().unwrap_or(&"").parse::<u64>() else {
            continue;
        };
        // K round io 5tswap (label avg ratio)... load1 check...
        let fixed = cols.len() - 1; // the columns before "check"
        if t.len() < fixed || cols.len() < 8 {
            continue;
        }
        let at = |name: &str| cols.iter().position(|c| c == name).and_then(|i| t.get(i));
        d.rows.push(DataplaneRow {
            clients,
            round: t[1].parse().context("round")?,
            io: at("io").and_then(|v| number(v)),
            swap: at("5tswap").and_then(|v| number(v)),
            // The first build's three columns follow io and 5tswap.
            appliance: t.get(4).and_then(|v| number(v)),
            appliance_avg: t.get(5).and_then(|v| number(v)),
            ratio: t.get(6).and_then(|v| number(v)),
            load1: at("load1").and_then(|v| number(v)),
            check: t[fixed..].join(" "),
        });
    }
    if columns.is_none() {
        bail!("no table header (K round io 5tswap ...) in the data-plane output");
    }
    Ok(d)
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A number at a JSON path (`a.b.c`), `None` when absent or not a number.
pub fn num(v: &Value, path: &str) -> Option<f64> {
    path.split('.')
        .try_fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(k),
        })?
        .as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txonly_rows_and_median() {
        let text = "round    testpmd Mpps    pktgen Mpps    ratio\n\
                    1              70.701         53.313    0.754\n\
                    2                 n/a         13.367      inf\n\
                    median         71.038         53.263    0.750\n\n\
                    frames: 64 bytes, latency stamps: none\n";
        let rows = txonly(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].pktgen, Some(53.313));
        assert_eq!((rows[1].testpmd, rows[1].ratio), (None, None));
        assert_eq!(rows[2].round, "median");
        assert_eq!(rows[2].ratio, Some(0.75));
        assert!(txonly("round testpmd pktgen ratio\n").is_err());
    }

    #[test]
    fn dataplane_table() {
        let text = "load before: 1.10, 1.20, 1.30\n\
            Mpps; ratio = build / testpmd 5tswap; check: forwarded == rx, nothing dropped\n\
            K         round        io    5tswap      appl       avg   ratio  load1  check\n\
            1000      1        26.686    20.881     6.157     6.100   0.295   1.10  appl:ok rss=123kB mbufs=16383 capacity=2048\n\
            100000    1        11.059       n/a     3.563     3.500     n/a   1.40  appl:MISMATCH rss=n/akB mbufs=131071 capacity=262144\n\
            \n\
            load after: 1.50, 1.30, 1.20\n\
            machine: 2 CPUs, Intel(R) Xeon(R) Processor, hugepages: no (--no-huge)\n";
        let d = dataplane(text).unwrap();
        assert_eq!(d.rows.len(), 2);
        let r = &d.rows[0];
        assert_eq!((r.clients, r.round), (1000, 1));
        assert_eq!(
            (r.io, r.swap, r.appliance),
            (Some(26.686), Some(20.881), Some(6.157))
        );
        assert_eq!((r.ratio, r.load1), (Some(0.295), Some(1.10)));
        assert!(r.check.starts_with("appl:ok"));
        assert_eq!((d.rows[1].swap, d.rows[1].ratio), (None, None));
        assert_eq!(d.load_before.as_deref(), Some("1.10, 1.20, 1.30"));
        assert!(d.machine.unwrap().starts_with("2 CPUs"));
        assert!(dataplane("nothing here\n").is_err());
    }

    #[test]
    fn json_paths() {
        let v: Value = serde_json::from_str(r#"{"a": {"b": [1, {"c": 2.5}]}}"#).unwrap();
        assert_eq!(num(&v, "a.b.1.c"), Some(2.5));
        assert_eq!(num(&v, "a.b.0"), Some(1.0));
        assert_eq!(num(&v, "a.x"), None);
    }
}
