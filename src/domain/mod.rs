//! Pure domain knowledge: Elsa's flavours and versions, and how workloads look. No IO here;
//! everything is a function of its arguments and unit-tested directly.

pub mod dotnet_config;
pub mod elsa;
pub mod env_expand;
pub mod image_contents;
pub mod log_signatures;
pub mod migration;
pub mod netpol;
pub mod npgsql;
pub mod pg_conf;
pub mod resolv;
pub mod service_host;
pub mod versions;
pub mod workload;
