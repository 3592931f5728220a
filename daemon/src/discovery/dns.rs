//! `dns_sd_configs`: each name's records, looked up with the daemon's DNS client (`crate::dns`)
//! from `--dns.server` or the nameservers of `/etc/resolv.conf`, become target groups.

use std::net::SocketAddr;

use pyrite_core::discovery::TargetGroup;
use pyrite_core::dns::{Record, RecordType};

use crate::dns::client::{self, Answer};

/// One group per record of every name, with upstream's `__meta_dns_*` labels.
pub fn discover(
    server: Option<SocketAddr>,
    names: &[String],
    kind: RecordType,
    port: u16,
) -> Result<Vec<TargetGroup>, String> {
    let servers = crate::dns::servers(&crate::dns::resolv_conf(server));
    let mut groups = Vec::new();
    for name in names {
        let records = match client::lookup(&servers, name, kind).map_err(|e| format!("{name}: {e}"))? {
            Answer::Records(records) => records,
            Answer::NoSuchName => Vec::new(),
        };
        for record in records {
            let mut meta = vec![("__meta_dns_name".to_string(), name.clone())];
            let target = match record {
                Record::Srv { port, target, .. } => {
                    if target.is_empty() {
                        continue;
                    }
                    meta.push(("__meta_dns_srv_record_target".into(), target.clone()));
                    meta.push(("__meta_dns_srv_record_port".into(), port.to_string()));
                    format!("{target}:{port}")
                }
                Record::A(ip) => format!("{ip}:{port}"),
                Record::Aaaa(ip) => format!("[{ip}]:{port}"),
                Record::Mx { exchange, .. } => {
                    meta.push(("__meta_dns_mx_record_target".into(), exchange.clone()));
                    format!("{exchange}:{port}")
                }
                Record::Ns(host) => {
                    meta.push(("__meta_dns_ns_record_target".into(), host.clone()));
                    format!("{host}:{port}")
                }
            };
            groups.push(TargetGroup {
                targets: vec![target],
                labels: meta.into_iter().collect(),
                source: name.clone(),
            });
        }
    }
    Ok(groups)
}
