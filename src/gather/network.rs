//! The database host's Service as the API sees it (`network.service`): the Service where the host
//! points, its EndpointSlices, and, when it is not there, the namespaces that do hold a Service
//! of that name (so the fix can name the full DNS name to use).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};

use super::kube::read;
use crate::domain::service_host::{self, Host};
use crate::facts::{DbService, Probe};

/// Looks up the Service `host` names. `listed` are the Services of `namespace`, already read:
/// a Service there is not fetched again.
pub async fn db_service(
    client: Client,
    namespace: String,
    listed: Probe<Vec<Service>>,
    host: String,
    timeout: Duration,
) -> Probe<DbService> {
    let (name, ns) = match service_host::classify(&host, &namespace) {
        Host::Service {
            name, namespace, ..
        } => (name, namespace),
        Host::Ip(_) | Host::External(_) => {
            return Probe::NotAttempted(format!("{host} is not a Service name of this cluster"));
        }
    };
    let by_name = |list: &[Service]| {
        list.iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .cloned()
    };
    let service: Probe<Option<Service>> = if ns == namespace {
        listed.map(|l| by_name(&l))
    } else {
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        read("service", "get", "services", timeout, || api.get_opt(&name)).await
    };
    let service = match service.into_result() {
        Ok(s) => s,
        Err(why) => return why,
    };
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let by_service = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let endpoint_slices = if service.is_some() {
        read("endpointslices", "list", "endpointslices", timeout, || {
            slices_api.list(&by_service)
        })
        .await
        .map(|l| l.items)
    } else {
        Probe::NotAttempted(format!("no Service {name} in namespace {ns}"))
    };
    let elsewhere = if service.is_some() {
        Probe::NotAttempted("the Service is where the host points".to_owned())
    } else {
        // One cluster-wide list, field-selected by name: often forbidden to a namespaced
        // Role, in which case the finding says the search was not possible.
        let all: Api<Service> = Api::all(client);
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        read("services", "list", "services", timeout, || all.list(&lp))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|s| s.metadata.namespace)
                    .filter(|n| n != &ns)
                    .collect()
            })
    };
    Probe::Observed(DbService {
        name,
        namespace: ns,
        service,
        endpoint_slices,
        elsewhere,
    })
}
