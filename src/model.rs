//! The effective Elsa of a run: what the Elsa process will see, computed once from the facts
//! (DESIGN.md §2). The Elsa workload and container, the container's environment after the
//! kubelet's `$(VAR)` expansion, the ConfigMap/Secret files mounted into it, the effective .NET
//! configuration with the source of every value, and the database session that configuration
//! makes ([`DbPlan`]).
//!
//! Pure: a function of [`Facts`], no IO. Gathering's phase planning (which database to log in
//! to, what the probe pod needs) and every check read this one model: [`Facts::effective`]
//! builds it on first use and keeps it until the facts change. The arrows run one way: this
//! module imports domain knowledge and facts, never a check, gather, the runner or the CLI.
//!
//! How to add a derived value: compute it in [`build`] (or a method on [`Effective`]) from the
//! facts and the values already here, and read it from the checks and from gather alike.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, Volume, VolumeMount};

use crate::domain::dotnet_config::{self, ConfigValue, EffectiveConfig, EnvInput, Source};
use crate::domain::elsa::{self, ElsaVersion, Flavor, Identity, ProviderRule, Selection};
use crate::domain::env_expand::{
    self, EnvValue, Expansion, Lookup, RefState, ServiceLink, ServicePort, Sources,
};
use crate::domain::npgsql::{self, ConnString};
use crate::domain::versions::{self, Clue, ClueSource, Constraint};
use crate::domain::workload::Workload;
use crate::facts::{FactKey, Facts, Probe};
use crate::redact::Secret;

/// Where the content root is: `WORKDIR /app` in every Elsa image.
pub const APP_DIR: &str = "/app";

/// A file a ConfigMap or Secret volume puts into the container.
#[derive(Debug, Clone)]
pub struct MountedFile {
    /// Absolute path in the container.
    pub path: String,
    pub volume: String,
    pub kind: env_expand::SourceKind,
    pub source: String,
    pub key: String,
    /// Through `subPath` (a single file; receives no updates).
    pub sub_path: bool,
    /// The content, when the source was read and has the key. Secret content stays a Secret.
    pub content: Probe<FileContent>,
}

#[derive(Debug, Clone)]
pub enum FileContent {
    Text(String),
    Secret(Secret),
}

impl FileContent {
    pub fn expose(&self) -> &str {
        match self {
            FileContent::Text(t) => t,
            FileContent::Secret(s) => s.expose(),
        }
    }
}

impl MountedFile {
    /// The directory the file lands in.
    pub fn dir(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(d, _)| d)
    }

    pub fn file_name(&self) -> &str {
        self.path
            .rsplit_once('/')
            .map_or(self.path.as_str(), |(_, f)| f)
    }

    /// `appsettings.json` or `appsettings.<X>.json`, in any case.
    pub fn is_appsettings(&self) -> bool {
        let n = self.file_name().to_ascii_lowercase();
        n.starts_with("appsettings") && n.ends_with(".json")
    }

    /// The environment part of `appsettings.<X>.json`, as written.
    pub fn environment(&self) -> Option<&str> {
        let n = self.file_name();
        let rest = n.get("appsettings.".len()..)?;
        let env = rest.strip_suffix(".json")?;
        (n[.."appsettings.".len()].eq_ignore_ascii_case("appsettings.") && !env.is_empty())
            .then_some(env)
    }
}

/// The selected workload, owned so the model can be kept beside the facts it came from.
#[derive(Debug, Clone)]
pub enum WorkloadObject {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

impl WorkloadObject {
    fn of(w: Workload<'_>) -> Self {
        match w {
            Workload::Deployment(d) => WorkloadObject::Deployment(Box::new(d.clone())),
            Workload::StatefulSet(s) => WorkloadObject::StatefulSet(Box::new(s.clone())),
        }
    }

    /// The borrowed view the domain functions take.
    pub fn get(&self) -> Workload<'_> {
        match self {
            WorkloadObject::Deployment(d) => Workload::Deployment(d),
            WorkloadObject::StatefulSet(s) => Workload::StatefulSet(s),
        }
    }
}

/// Init container or regular container (the Elsa one, or a sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    Regular,
}

/// One container of a pod template with its environment after the kubelet's expansion.
#[derive(Debug, Clone)]
pub struct ContainerEnv {
    pub kind: ContainerKind,
    /// The container with its literal env values as written (restored from the literals).
    pub container: Container,
    pub expansion: Expansion,
}

impl ContainerEnv {
    pub fn name(&self) -> &str {
        &self.container.name
    }

    /// `initContainer migrations`, `container elsa-server`: how findings name it.
    pub fn label(&self) -> String {
        match self.kind {
            ContainerKind::Init => format!("initContainer {}", self.container.name),
            ContainerKind::Regular => format!("container {}", self.container.name),
        }
    }
}

/// The workload behind the database host's Service (in Elsa's namespace), found by the
/// Service's selector, with the environment of each of its containers.
#[derive(Debug, Clone)]
pub struct DatabaseWorkload {
    workload: WorkloadObject,
    /// The Service whose selector matches its pod template.
    pub service: String,
    /// Init containers first, then the others, in spec order.
    pub containers: Vec<ContainerEnv>,
}

impl DatabaseWorkload {
    pub fn workload(&self) -> Workload<'_> {
        self.workload.get()
    }
}

/// Why there is no model: the finding every check that needs one reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// A prerequisite another check judges is missing (no workload identified).
    Skip(String),
    /// Something could not be observed or is not there to read.
    Unknown(String),
}

impl Unavailable {
    pub fn message(&self) -> &str {
        match self {
            Unavailable::Skip(m) | Unavailable::Unknown(m) => m,
        }
    }
}

/// The effective Elsa of this run.
#[derive(Debug, Clone)]
pub struct Effective {
    workload: WorkloadObject,
    /// The Elsa container with its literal env values as written (restored from
    /// `Facts::env_literals`): values are computed from it, displays are re-masked.
    pub container: Container,
    /// Which Elsa this is, as far as the clues tell: the flavour, and the version when every
    /// candidate shares it (a minor, or a patch).
    pub identity: Option<Identity>,
    /// Everything known about the version, with its sources (`domain::versions`).
    pub clues: Vec<Clue>,
    /// The (flavour, release) pairs the clues leave possible; empty when the host is not a
    /// stock one (a custom build, Studio).
    pub candidates: Vec<(Flavor, ElsaVersion)>,
    pub expansion: Expansion,
    /// Every container of the Elsa pod with its environment after expansion: init containers
    /// first, then the regular ones (the Elsa container among them, named by `container`).
    pub containers: Vec<ContainerEnv>,
    /// The database's own workload, when the connection string's host is a Service of this
    /// namespace whose selector matches a workload of the facts ([`database_workload`]).
    pub database: Option<DatabaseWorkload>,
    pub env: Vec<EnvInput>,
    /// The .NET environment name and the variable that set it (None: the default).
    pub environment: (String, Option<String>),
    pub files: Vec<MountedFile>,
    pub config: EffectiveConfig,
}

struct FactSources<'a>(&'a Facts, BTreeMap<String, BTreeMap<String, String>>);

impl Sources for FactSources<'_> {
    fn config_map(&self, name: &str) -> Lookup<&BTreeMap<String, String>> {
        match (self.0.config_maps.get(name), self.1.get(name)) {
            (Some(Probe::Observed(_)), Some(data)) => Lookup::Found(data),
            (Some(Probe::Absent), _) => Lookup::Missing,
            (Some(other), _) => Lookup::Unknown(other.why_not().unwrap_or_default()),
            (None, _) => Lookup::Unknown("not gathered".to_owned()),
        }
    }

    fn secret(&self, name: &str) -> Lookup<&BTreeMap<String, Secret>> {
        match self.0.secrets.get(name) {
            Some(Probe::Observed(s)) => Lookup::Found(&s.data),
            Some(Probe::Absent) => Lookup::Missing,
            Some(other) => Lookup::Unknown(other.why_not().unwrap_or_default()),
            None => Lookup::Unknown("not gathered".to_owned()),
        }
    }
}

/// The Services of the namespace as service links, and the `kubernetes` master service.
fn service_links(f: &Facts) -> Vec<ServiceLink> {
    f.services
        .observed()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            Some(ServiceLink {
                name: s.metadata.name.clone()?,
                cluster_ip: spec.cluster_ip.clone().unwrap_or_default(),
                ports: spec
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| ServicePort {
                        name: p.name.clone(),
                        port: p.port,
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The container that runs Elsa: the one whose image is Elsa, else the first.
fn elsa_container<'a>(spec: &'a PodSpec, identity: Option<&Identity>) -> Option<&'a Container> {
    identity
        .and_then(|id| spec.containers.iter().find(|c| c.name == id.container))
        .or_else(|| spec.containers.first())
}

/// Files the container's ConfigMap/Secret volume mounts put in place.
fn mounted_files(f: &Facts, spec: &PodSpec, container: &Container) -> Vec<MountedFile> {
    let volumes: BTreeMap<&str, &Volume> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(v) = volumes.get(m.name.as_str()) else {
            continue;
        };
        let (kind, source, items) = if let Some(cm) = &v.config_map {
            (
                env_expand::SourceKind::ConfigMap,
                cm.name.clone(),
                cm.items.clone(),
            )
        } else if let Some(s) = &v.secret {
            (
                env_expand::SourceKind::Secret,
                s.secret_name.clone().unwrap_or_default(),
                s.items.clone(),
            )
        } else {
            continue;
        };
        let keys = source_keys(f, kind, &source);
        // key → path inside the volume
        let files: Vec<(String, String)> = match &items {
            Some(items) => items
                .iter()
                .map(|i| (i.key.clone(), i.path.clone()))
                .collect(),
            None => keys.iter().map(|k| (k.clone(), k.clone())).collect(),
        };
        let mount = m.mount_path.trim_end_matches('/');
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        for (key, path) in files {
            let at = match sub {
                Some(sp) if sp == path => mount.to_owned(),
                Some(_) => continue,
                None => format!("{mount}/{path}"),
            };
            out.push(MountedFile {
                path: at,
                volume: m.name.clone(),
                kind,
                source: source.clone(),
                content: content(f, kind, &source, &key),
                key,
                sub_path: sub.is_some(),
            });
        }
        // A subPath naming a key the source does not have: the kubelet mounts an empty
        // directory there. Record it so checks can say so.
        if let Some(sp) = sub
            && !out.iter().any(|x| x.volume == m.name && x.path == mount)
            && items.is_none()
        {
            out.push(MountedFile {
                path: mount.to_owned(),
                volume: m.name.clone(),
                kind,
                source: source.clone(),
                key: sp.to_owned(),
                sub_path: true,
                content: content(f, kind, &source, sp),
            });
        }
    }
    out
}

/// The keys a source is known to have (empty when it could not be read).
fn source_keys(f: &Facts, kind: env_expand::SourceKind, name: &str) -> Vec<String> {
    match kind {
        env_expand::SourceKind::ConfigMap => match f.config_maps.get(name) {
            Some(Probe::Observed(cm)) => cm
                .data
                .keys()
                .chain(cm.binary_keys.iter())
                .cloned()
                .collect(),
            _ => Vec::new(),
        },
        env_expand::SourceKind::Secret => match f.secrets.get(name) {
            Some(Probe::Observed(s)) => s.data.keys().cloned().collect(),
            _ => Vec::new(),
        },
    }
}

fn content(f: &Facts, kind: env_expand::SourceKind, name: &str, key: &str) -> Probe<FileContent> {
    match kind {
        env_expand::SourceKind::ConfigMap => match f.config_maps.get(name) {
            Some(Probe::Observed(cm)) => cm.data.get(key).map_or(Probe::Absent, |t| {
                Probe::Observed(FileContent::Text(t.clone()))
            }),
            Some(other) => other.clone().map(|_| FileContent::Text(String::new())),
            None => Probe::NotAttempted("not gathered".to_owned()),
        },
        env_expand::SourceKind::Secret => match f.secrets.get(name) {
            Some(Probe::Observed(s)) => s.data.get(key).map_or(Probe::Absent, |t| {
                Probe::Observed(FileContent::Secret(t.clone()))
            }),
            Some(other) => other.clone().map(|_| FileContent::Text(String::new())),
            None => Probe::NotAttempted("not gathered".to_owned()),
        },
    }
}

/// The process environment as dotnet_config takes it.
fn env_inputs(expansion: &Expansion, container: &str) -> Vec<EnvInput> {
    expansion
        .vars
        .iter()
        .filter_map(|e| {
            let value = match &e.value {
                // Literal values are real here; displays are masked again.
                EnvValue::Text(x) | EnvValue::FromSource { value: x, .. } => {
                    ConfigValue::with_display(
                        x.expose(),
                        crate::redact::env_value(&e.name, &x.display()),
                    )
                }
                EnvValue::RuntimeOnly(what) => ConfigValue::runtime(what.clone()),
                EnvValue::Unavailable(_) => return None,
            };
            Some(EnvInput {
                name: e.name.clone(),
                value,
                origin: format!("container {container}, {}", e.origin),
            })
        })
        .collect()
}

/// The Elsa workload the facts identify, as `workload.found` selects it.
fn selected(f: &Facts) -> Result<Workload<'_>, Unavailable> {
    let Some(all) = f.workload_pool() else {
        return Err(Unavailable::Skip(
            "no Elsa workload identified — see workload.found".to_owned(),
        ));
    };
    match elsa::select_workload(&all, f.scope.workload_hint.as_deref()) {
        Selection::Selected { index, .. } => all
            .get(index)
            .copied()
            .ok_or_else(|| Unavailable::Unknown("selection out of range".to_owned())),
        _ => Err(Unavailable::Skip(
            "no Elsa workload identified — see workload.found".to_owned(),
        )),
    }
}

impl Effective {
    /// Whether `c` is the Elsa container itself (not an init container or a sidecar).
    pub fn is_elsa_container(&self, c: &ContainerEnv) -> bool {
        c.kind == ContainerKind::Regular && c.name() == self.container.name
    }

    /// How a finding about `c` begins: nothing for the Elsa container (its findings read as
    /// they always did), `initContainer migrations: ` for the others.
    pub fn container_prefix(&self, c: &ContainerEnv) -> String {
        if self.is_elsa_container(c) {
            String::new()
        } else {
            format!("{}: ", c.label())
        }
    }

    /// The Elsa workload.
    pub fn workload(&self) -> Workload<'_> {
        self.workload.get()
    }

    /// Its pod template's spec.
    pub fn spec(&self) -> &PodSpec {
        // `build` only makes a model for a workload with a pod template.
        static EMPTY: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);
        self.workload().pod_spec().unwrap_or(&EMPTY)
    }

    /// The `DatabaseProvider` setting in effect (images that read it).
    pub fn provider_setting(&self) -> Option<&dotnet_config::Setting> {
        self.config.get("DatabaseProvider")
    }

    /// The `ConnectionStrings` name the provider reads.
    pub fn connection_name(&self) -> &'static str {
        let p = self
            .provider_setting()
            .map(|s| s.value.expose().to_owned())
            .unwrap_or_default();
        elsa::POSTGRES_FAMILY
            .iter()
            .copied()
            .find(|n| *n == p)
            .unwrap_or("PostgreSql")
    }
}

/// The Elsa identity with the version reasoned from every clue (DESIGN.md §3 "Versions"): the
/// user's statement, the image's contents, the database's history, the tag and the name. The
/// identity's version is the one every candidate shares (a minor, or a patch); when the
/// candidates span minors it is `None` and version-dependent checks judge each candidate.
fn identify(
    f: &Facts,
    workload: &Workload<'_>,
) -> (Option<Identity>, Vec<Clue>, Vec<(Flavor, ElsaVersion)>) {
    let Some(identity) = elsa::identify(workload) else {
        return (None, Vec::new(), Vec::new());
    };
    // The exec listing's clues (elsa-audit §7): only the listing of this workload's Elsa
    // container counts.
    let contents: &[Clue] = match &f.pod_files {
        Probe::Observed(l) if l.container == identity.container => &l.clues,
        _ => &[],
    };
    let (identity, clues, candidates) = refine(f.scope.stated.as_ref(), identity, contents);
    (Some(identity), clues, candidates)
}

/// The identity the image gives, refined by every other clue: the user's statement, the image
/// name's history and the container's contents (`contents`, `ClueSource::ImageContents`).
/// Pure, so gathering (which health path to ask) and the model reach the same answer.
pub fn refine(
    stated: Option<&crate::facts::StatedElsa>,
    mut identity: Identity,
    contents: &[Clue],
) -> (Identity, Vec<Clue>, Vec<(Flavor, ElsaVersion)>) {
    let mut clues = Vec::new();
    if let Some(stated) = stated {
        if let Some(flavor) = stated.flavor {
            clues.push(Clue {
                source: ClueSource::User,
                detail: format!("--elsa-flavor {flavor}"),
                constraint: Constraint::Host { flavor },
            });
        }
        if let Some(version) = stated.version {
            clues.push(Clue {
                source: ClueSource::User,
                detail: format!("--elsa-version {version}"),
                constraint: Constraint::Exact { version },
            });
        }
    }
    if let Some(info) = elsa::classify_image(&identity.image) {
        clues.extend(versions::clues_from_image(&info));
    }
    clues.extend(contents.iter().cloned());
    // Only a stock host has candidates: a custom build's code is its own unless the user
    // (or its contents) say which stock host it is.
    let host_known = clues
        .iter()
        .any(|c| matches!(c.constraint, Constraint::Host { .. }))
        || identity.flavor == Flavor::ServerAndStudio;
    if identity.flavor == Flavor::Custom
        && let Some(flavor) = clues.iter().find_map(|c| match c.constraint {
            Constraint::Host { flavor } if c.source == ClueSource::ImageContents => Some(flavor),
            _ => None,
        })
    {
        // A custom image whose contents show a stock host is judged as that host.
        identity.flavor = flavor;
    }
    if identity.flavor == Flavor::Studio || !host_known {
        return (identity, clues, Vec::new());
    }
    let candidates = versions::candidates(&clues);
    if let Some((first_flavor, first)) = candidates.first().copied() {
        if candidates.iter().all(|(fl, _)| *fl == first_flavor) {
            identity.flavor = first_flavor;
        }
        identity.version = candidates
            .iter()
            .all(|(_, v)| v.mm() == first.mm())
            .then(|| ElsaVersion {
                patch: first
                    .patch
                    .filter(|_| candidates.iter().all(|(_, v)| v.patch == first.patch)),
                ..first
            });
    }
    (identity, clues, candidates)
}

/// The facts the model reads. A check that reads the model must wait for all of them (its
/// `needs`), so that it judges the same model live, where facts arrive one by one, as in a
/// replay, where all are there at once (a test in `checks` holds every check to this).
pub const INPUTS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
];

impl Effective {
    /// Where the version came from, for evidence: `image tag 3.5.3`, or the candidates.
    pub fn version_evidence(&self) -> String {
        let mut sources: Vec<String> = self
            .clues
            .iter()
            .map(|c| format!("{} ({})", c.detail, c.source))
            .collect();
        sources.dedup();
        if sources.is_empty() {
            "nothing names the version".to_owned()
        } else {
            sources.join("; ")
        }
    }

    /// Whether the user stated the version (`--elsa-version`).
    pub fn version_stated(&self) -> bool {
        self.clues.iter().any(|c| {
            c.source == ClueSource::User && matches!(c.constraint, Constraint::Exact { .. })
        })
    }
}

/// A container with the literal env values scrubbed from the facts put back (they are keyed
/// `<workload>/<container>/<env index>`).
fn with_literals(f: &Facts, workload: &str, c: &Container) -> Container {
    let mut c = c.clone();
    let name = c.name.clone();
    for (i, e) in c.env.iter_mut().flatten().enumerate() {
        if let Some(original) = f.env_literals.get(&format!("{workload}/{name}/{i}")) {
            e.value = Some(original.expose().to_owned());
        }
    }
    c
}

/// What the kubelet makes of every container of a pod template: init containers first.
fn pod_env(
    f: &Facts,
    workload: &Workload<'_>,
    spec: &PodSpec,
    sources: &dyn Sources,
    links: &[ServiceLink],
) -> Vec<ContainerEnv> {
    let master = ServiceLink {
        name: "kubernetes".to_owned(),
        cluster_ip: String::new(),
        ports: Vec::new(),
    };
    let reference = workload.reference();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (ContainerKind::Init, c));
    let regular = spec.containers.iter().map(|c| (ContainerKind::Regular, c));
    init.chain(regular)
        .map(|(kind, c)| {
            let container = with_literals(f, &reference, c);
            let expansion = env_expand::expand(&env_expand::Input {
                container: &container,
                enable_service_links: spec.enable_service_links.unwrap_or(true),
                services: links,
                master: Some(&master),
                sources,
            });
            ContainerEnv {
                kind,
                container,
                expansion,
            }
        })
        .collect()
}

/// The workload behind a database host: the host must name a Service of the facts' namespace
/// (`domain::service_host`), and the workload is the first other than `elsa` (a reference,
/// `deployment/elsa-server`) whose pod template that Service's selector matches
/// (`domain::workload::selected_by`). With the Service's name.
pub fn database_workload<'a>(
    f: &'a Facts,
    elsa: &str,
    host: &str,
) -> Option<(Workload<'a>, String)> {
    let (service, ns) = crate::domain::service_host::service_of(host, &f.scope.namespace)?;
    if ns != f.scope.namespace {
        return None;
    }
    let svc = f
        .services
        .observed()?
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(service.as_str()))?;
    let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
    let w = f
        .workload_pool()?
        .into_iter()
        .find(|w| w.reference() != elsa && crate::domain::workload::selected_by(selector, w))?;
    Some((w, service))
}

/// The ConfigMaps and Secrets the database workload's pod template references (gathering
/// fetches them beside Elsa's, so `config.refs` can judge the database's own configuration).
pub fn database_sources(
    f: &Facts,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    f.effective()
        .ok()
        .and_then(|v| v.database.as_ref())
        .and_then(|d| d.workload().pod_spec())
        .map(crate::domain::workload::referenced_sources)
        .unwrap_or_default()
}

/// Builds the model, or says why there is none.
pub fn build(f: &Facts) -> Result<Effective, Unavailable> {
    let workload = selected(f)?;
    let spec = workload.pod_spec().ok_or_else(|| {
        Unavailable::Unknown(format!("{} has no pod template", workload.reference()))
    })?;
    let (identity, clues, candidates) = identify(f, &workload);
    // Literal values as written (gathering scrubbed them from the facts' copy).
    let container = with_literals(
        f,
        &workload.reference(),
        elsa_container(spec, identity.as_ref()).ok_or_else(|| {
            Unavailable::Unknown(format!("{} has no containers", workload.reference()))
        })?,
    );
    let cm_data: BTreeMap<String, BTreeMap<String, String>> = f
        .config_maps
        .iter()
        .filter_map(|(n, p)| p.observed().map(|cm| (n.clone(), cm.data.clone())))
        .collect();
    let sources = FactSources(f, cm_data);
    let links = service_links(f);
    let containers = pod_env(f, &workload, spec, &sources, &links);
    let expansion = containers
        .iter()
        .find(|c| c.kind == ContainerKind::Regular && c.name() == container.name)
        .map(|c| c.expansion.clone())
        .ok_or_else(|| Unavailable::Unknown("the Elsa container vanished".to_owned()))?;
    let env = env_inputs(&expansion, &container.name);
    let (env_name, env_var) = dotnet_config::environment_name(&env);
    let environment = (env_name, env_var.map(|e| e.name.clone()));
    let files = mounted_files(f, spec, &container);
    let (flavor, version) = identity
        .as_ref()
        .map_or((elsa::Flavor::Custom, None), |i| (i.flavor, i.version));
    let mut config = EffectiveConfig::default();
    // A mounted /app/appsettings.json replaces the image's own file.
    let replaced = files
        .iter()
        .find(|m| m.dir() == APP_DIR && m.file_name() == "appsettings.json");
    match replaced {
        Some(file) => add_file(&mut config, file),
        None => config.add_json(&elsa::image_defaults(flavor, version), |_| {
            Source::ImageDefault
        }),
    }
    let env_file = format!("appsettings.{}.json", environment.0);
    if let Some(file) = files
        .iter()
        .find(|m| m.dir() == APP_DIR && m.file_name() == env_file)
    {
        add_file(&mut config, file);
    }
    config.add_env(&env, elsa::dotnet_major(flavor, version));
    // ModularServer 3.8 adds its shell overlay file after the environment variables, so it
    // overrides them (elsa-audit.md row 28, §4.3).
    if flavor == Flavor::ModularServer && version.is_none_or(|v| v.mm() >= (3, 8)) {
        let path = shell_overlay_path(&config);
        if let Some(file) = files.iter().find(|m| m.path == path) {
            add_file(&mut config, file);
        }
    }
    let mut model = Effective {
        workload: WorkloadObject::of(workload),
        container,
        identity,
        clues,
        candidates,
        expansion,
        containers,
        database: None,
        env,
        environment,
        files,
        config,
    };
    // The database's own workload, behind the host the configuration names.
    let host = model
        .configured_connection()
        .ok()
        .and_then(|(_, s)| npgsql::parse(s.value.expose()).ok())
        .and_then(|c| c.hosts().into_iter().next().map(|h| h.host));
    if let Some((w, service)) = host
        .as_deref()
        .and_then(|h| database_workload(f, &workload.reference(), h))
        && let Some(db_spec) = w.pod_spec()
    {
        model.database = Some(DatabaseWorkload {
            containers: pod_env(f, &w, db_spec, &sources, &links),
            workload: WorkloadObject::of(w),
            service,
        });
    }
    Ok(model)
}

/// The ModularServer 3.8 shell overlay: `Elsa:PlatformIntegration:ShellOverlayPath`, relative
/// to the content root `/app` unless absolute, by default `/app/platform-shell-overrides.json`
/// (elsa-audit.md row 28). An optional file: absent, nothing changes.
pub const SHELL_OVERLAY_KEY: &str = "Elsa:PlatformIntegration:ShellOverlayPath";

fn shell_overlay_path(config: &EffectiveConfig) -> String {
    let configured = config
        .get(SHELL_OVERLAY_KEY)
        .map(|s| s.value.expose().trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "platform-shell-overrides.json".to_owned());
    if configured.starts_with('/') {
        configured
    } else {
        format!("{APP_DIR}/{}", configured.trim_start_matches("./"))
    }
}

fn add_file(config: &mut EffectiveConfig, file: &MountedFile) {
    if let Probe::Observed(c) = &file.content
        && let Ok(json) = dotnet_config::parse_appsettings(c.expose())
    {
        let path = file.path.clone();
        config.add_json(&json, |k| Source::File {
            path: path.clone(),
            json_path: k.to_owned(),
        });
    }
}

/// A volume mount's display: `volume → /app/appsettings.Production.json (subPath …)`.
pub fn describe_mount(m: &VolumeMount) -> String {
    match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
        Some(sp) => format!("{} at {} (subPath {sp})", m.name, m.mount_path),
        None => format!("{} at {}", m.name, m.mount_path),
    }
}

/// How many Elsa pods may run at once: the workload's `spec.replicas`, raised to the
/// `maxReplicas` of the HorizontalPodAutoscaler that targets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    /// `spec.replicas` (1 when unset).
    pub spec: i32,
    /// The autoscaler's name, `minReplicas` (1 when unset) and `maxReplicas`.
    pub autoscaler: Option<(String, i32, i32)>,
    /// Why the autoscalers are not known (not listed, forbidden), when they are not.
    pub autoscalers_unknown: Option<String>,
}

impl Replicas {
    /// The most pods that may run: what production.replicas, locking and pool count with.
    pub fn most(&self) -> i32 {
        self.autoscaler
            .as_ref()
            .map_or(self.spec, |(_, _, max)| self.spec.max(*max))
    }
}

impl Effective {
    /// The replicas of the Elsa workload, with its autoscaler from `autoscalers` (the
    /// namespace's, as listed or as the bundle holds them).
    pub fn replicas(
        &self,
        autoscalers: &Probe<Vec<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>>,
    ) -> Replicas {
        let w = self.workload();
        let spec = w.desired_replicas();
        match autoscalers {
            Probe::Observed(list) => Replicas {
                spec,
                autoscaler: crate::domain::workload::autoscaler_for(list, &w).and_then(|h| {
                    let s = h.spec.as_ref()?;
                    Some((
                        h.metadata.name.clone().unwrap_or_default(),
                        s.min_replicas.unwrap_or(1),
                        s.max_replicas,
                    ))
                }),
                autoscalers_unknown: None,
            },
            Probe::Absent => Replicas {
                spec,
                autoscaler: None,
                autoscalers_unknown: None,
            },
            other => Replicas {
                spec,
                autoscaler: None,
                autoscalers_unknown: Some(match other {
                    Probe::Forbidden { verb, resource } => {
                        format!("this user may not {verb} {resource}")
                    }
                    other => other.why_not().unwrap_or_default(),
                }),
            },
        }
    }
}

/// What to connect to and how: the database session Elsa's effective configuration makes.
pub struct DbPlan {
    pub conn: ConnString,
    /// The password as the app sends it (after the kubelet's expansion).
    pub password: Option<Secret>,
    pub tables: Vec<String>,
    /// The address the host name resolved to, when it was resolved with a pod's resolv.conf
    /// rather than this machine's resolver (the probe pod). TLS still verifies the name.
    pub host_addr: Option<std::net::IpAddr>,
}

impl Effective {
    /// Why Elsa does not use the PostgreSQL connection string it is configured with (yet), or
    /// `None` when it does (or may: a custom build that sets the key explicitly means it).
    /// Over candidate versions it is in effect only when every candidate agrees (issue 11 #7:
    /// the network and database checks still test the intended database, and say this).
    pub fn not_in_effect(&self) -> Option<String> {
        let id = self.identity.as_ref()?;
        if id.flavor == Flavor::Custom {
            return None;
        }
        let pairs: Vec<(Flavor, Option<ElsaVersion>)> =
            if id.version.is_none() && !self.candidates.is_empty() {
                self.candidates
                    .iter()
                    .map(|(f, v)| (*f, Some(*v)))
                    .collect()
            } else {
                vec![(id.flavor, id.version)]
            };
        let reads_key = |(f, v): &(Flavor, Option<ElsaVersion>)| {
            elsa::provider_rule(*f, *v) == Some(ProviderRule::DatabaseProviderKey)
        };
        if !pairs.iter().all(reads_key) {
            if pairs.iter().any(reads_key) {
                return Some(format!(
                    "whether this image takes its connection string from configuration depends on the version ({}) — see workload.flavor",
                    versions::describe(&self.candidates)
                ));
            }
            if id.version.is_none() && self.candidates.is_empty() {
                return Some("the Elsa version is not known — see workload.flavor".into());
            }
            return Some(
                "this image does not take its connection string from configuration — see config.provider".into(),
            );
        }
        let provider = self
            .provider_setting()
            .map_or("Sqlite", |s| s.value.expose());
        if !elsa::POSTGRES_FAMILY.contains(&provider) {
            return Some(format!(
                "Elsa does not use PostgreSQL here (DatabaseProvider {provider}) — see config.provider"
            ));
        }
        None
    }

    /// The PostgreSQL database the configuration points at, whether or not Elsa uses it yet
    /// (`not_in_effect`): the effective connection string (with the password the kubelet's
    /// expansion produced, literal `$(…)` included) and the tables to look for.
    pub fn intended_database(&self) -> Result<DbPlan, String> {
        let v = self;
        let (key, s) = v.configured_connection()?;
        // A reference to a variable whose Secret or ConfigMap is missing: the container cannot
        // start, so there is no login of the app's to reproduce.
        if let Source::Env { var, .. } = &s.source
            && let Some(EnvValue::Text(x)) = v.expansion.get(var).map(|e| &e.value)
            && let Some(why) =
                x.refs
                    .iter()
                    .find_map(|r| match v.expansion.get(&r.name).map(|e| &e.value) {
                        Some(EnvValue::Unavailable(why)) if r.state == RefState::RuntimeOnly => {
                            Some(why)
                        }
                        _ => None,
                    })
        {
            // A source that could not be read (a 403) is not a missing one.
            return Err(if why.starts_with("could not read") {
                format!(
                    "{key} depends on a source this user may not read ({why}) — see config.refs"
                )
            } else {
                format!(
                    "{key} depends on a source that does not exist, so the container cannot start — see config.refs"
                )
            });
        }
        let conn = npgsql::parse(s.value.expose())
            .map_err(|e| format!("{key} does not parse ({e}) — see config.connection-string"))?;
        let password = conn.password();
        Ok(DbPlan {
            conn,
            password,
            tables: elsa::TABLES.iter().map(|t| t.name.to_owned()).collect(),
            host_addr: None,
        })
    }

    /// The connection string the deployment sets for the provider's name (not the image's
    /// default), with its configuration key, or why there is none to read.
    pub fn configured_connection(&self) -> Result<(String, &dotnet_config::Setting), String> {
        let key = self.connection_key();
        let s = self
            .config
            .get(&key)
            .filter(|s| s.source != Source::ImageDefault)
            .ok_or_else(|| format!("{key} is not set — see config.connection-string"))?;
        if s.value.runtime_only {
            return Err(format!("{key} is known only at runtime"));
        }
        Ok((key, s))
    }

    /// `ConnectionStrings:<name>` for the provider's connection-string name.
    fn connection_key(&self) -> String {
        format!("ConnectionStrings:{}", self.connection_name())
    }

    /// The variable the connection string comes from, when it comes from the environment (a
    /// mounted file otherwise: the probe pod cannot be given it the way Elsa gets it).
    pub fn connection_env_var(&self) -> Option<&str> {
        match &self.config.get(&self.connection_key())?.source {
            Source::Env { var, .. } => Some(var),
            _ => None,
        }
    }
}

/// The database the configuration points at, in effect or not ([`Effective::intended_database`]).
pub fn intended_database(f: &Facts) -> Result<DbPlan, String> {
    f.effective()
        .map_err(|u| u.message().to_owned())?
        .intended_database()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::checks::test_support::{deployment, with_deployments};
    use crate::facts::{ConfigMapData, FactUpdate, Probe};

    #[test]
    fn built_once_and_again_when_the_facts_change() {
        let mut d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 1);
        d["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
            serde_json::json!([{"configMapRef": {"name": "elsa-env"}}]);
        let mut f = with_deployments(serde_json::json!([d]));
        let first = f.effective().expect("model");
        assert!(
            std::ptr::eq(first, f.effective().expect("model")),
            "the second read is the same model"
        );
        assert_ne!(
            first.provider_setting().map(|s| s.value.expose()),
            Some("PostgreSql")
        );
        let data = ConfigMapData {
            data: BTreeMap::from([("DatabaseProvider".to_owned(), "PostgreSql".to_owned())]),
            ..Default::default()
        };
        FactUpdate::ConfigSources {
            config_maps: BTreeMap::from([("elsa-env".to_owned(), Probe::Observed(data))]),
            secrets: BTreeMap::new(),
        }
        .apply(&mut f);
        let after = f.effective().expect("model");
        assert_eq!(
            after.provider_setting().map(|s| s.value.expose()),
            Some("PostgreSql"),
            "an update rebuilds the model"
        );
    }

    #[test]
    fn facts_outside_the_inputs_keep_the_model() {
        // Whether the memo holds a model (it lives inside the facts, so its address says
        // nothing): the facts' Debug shows it.
        fn built(f: &crate::facts::Facts) -> bool {
            format!("{f:?}").contains("ModelCell(built)")
        }
        fn why<T>() -> Probe<T> {
            Probe::NotAttempted("not in this test".to_owned())
        }
        let d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 2);
        let mut f = with_deployments(serde_json::json!([d]));
        assert!(!built(&f));
        f.effective().expect("model");
        assert!(built(&f));
        for update in [
            FactUpdate::Logs(why()),
            FactUpdate::Health(why()),
            FactUpdate::Events(why()),
            FactUpdate::Pods(why()),
            FactUpdate::Network(why()),
            FactUpdate::DbPods(why()),
            FactUpdate::Autoscalers(why()),
            FactUpdate::Migrations(why()),
            FactUpdate::Database {
                target: None,
                observation: why(),
            },
            FactUpdate::Started(vec![crate::facts::FactKey::Logs]),
        ] {
            let name = format!("{:?}", update.key());
            update.apply(&mut f);
            assert!(built(&f), "{name} dropped the model");
        }
        f.set_unobserved(crate::facts::FactKey::Health, &why::<()>());
        assert!(built(&f));
        // What was kept is what a rebuild from the same facts gives.
        let kept = format!("{:?}", f.effective().expect("model"));
        assert_eq!(kept, format!("{:?}", super::build(&f).expect("model")));
        // Every input drops it.
        FactUpdate::Services(Probe::Observed(Vec::new())).apply(&mut f);
        assert!(!built(&f));
        f.effective().expect("model");
        FactUpdate::PodFiles(why()).apply(&mut f);
        assert!(!built(&f));
        f.effective().expect("model");
        f.set_unobserved(crate::facts::FactKey::ConfigSources, &why::<()>());
        assert!(!built(&f));
    }

    #[test]
    fn every_container_is_expanded_once_with_its_literals() {
        let mut d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 1);
        let spec = &mut d["spec"]["template"]["spec"];
        spec["initContainers"] = serde_json::json!([{"name": "migrations", "image": "busybox",
            "env": [{"name": "PW", "value": "scrubbed"}, {"name": "CS", "value": "Password=$(PW)"}]}]);
        spec["containers"]
            .as_array_mut()
            .expect("containers")
            .push(serde_json::json!({"name": "sidecar", "image": "busybox"}));
        let mut f = crate::checks::test_support::with_deployments(serde_json::json!([d]));
        // Gathering keeps the literal the facts' copy no longer shows.
        f.env_literals.insert(
            "deployment/elsa-server/migrations/0".to_owned(),
            crate::redact::Secret::new("s3cret"),
        );
        let v = f.effective().expect("model");
        let names: Vec<(super::ContainerKind, &str)> =
            v.containers.iter().map(|c| (c.kind, c.name())).collect();
        assert_eq!(
            names,
            [
                (super::ContainerKind::Init, "migrations"),
                (super::ContainerKind::Regular, "elsa-server"),
                (super::ContainerKind::Regular, "sidecar"),
            ]
        );
        assert_eq!(v.containers[0].label(), "initContainer migrations");
        let cs = v.containers[0].expansion.get("CS").expect("CS");
        assert_eq!(
            cs.value.expanded().map(|x| x.expose()),
            Some("Password=s3cret"),
            "the restored literal is what $(PW) expands to"
        );
        assert_eq!(v.container.name, "elsa-server");
        assert!(
            v.database.is_none(),
            "no connection string, no database workload"
        );
    }

    #[test]
    fn the_database_workload_is_the_one_the_services_selector_matches() {
        use crate::checks::test_support::with_deployments;
        let pg = deployment("postgres", "postgres:16", 1);
        let mut other = deployment("pgadmin", "dpage/pgadmin4", 1);
        other["spec"]["template"]["metadata"]["labels"] = serde_json::json!({"app": "pgadmin"});
        let elsa = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 1);
        let mut f = with_deployments(serde_json::json!([elsa, other, pg]));
        f.services = Probe::Observed(
            serde_json::from_value(serde_json::json!([
                {"metadata": {"name": "db"}, "spec": {"selector": {"app": "postgres"}, "ports": [{"port": 5432}]}},
                {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 5432}]}}
            ]))
            .expect("services"),
        );
        let found = |host: &str| {
            super::database_workload(&f, "deployment/elsa-server", host)
                .map(|(w, svc)| (w.reference(), svc))
        };
        assert_eq!(
            found("db"),
            Some(("deployment/postgres".to_owned(), "db".to_owned()))
        );
        assert_eq!(
            found("db.elsa.svc.cluster.local"),
            Some(("deployment/postgres".to_owned(), "db".to_owned()))
        );
        assert_eq!(found("db.other"), None, "another namespace is not listed");
        assert_eq!(found("manual"), None, "no selector, no workload");
        assert_eq!(found("10.0.0.5"), None);
        assert_eq!(found("nope"), None);
        // Elsa itself is never its own database.
        assert_eq!(
            super::database_workload(&f, "deployment/postgres", "db").map(|(w, _)| w.reference()),
            None
        );
    }

    #[test]
    fn no_workload_is_a_skip_naming_workload_found() {
        let f = crate::checks::test_support::empty();
        let why = f.effective().expect_err("no model");
        assert!(matches!(why, super::Unavailable::Skip(m) if m.contains("workload.found")));
    }

    /// elsa-audit.md row 28 (§4.3): ModularServer 3.8 adds `/app/platform-shell-overrides.json`
    /// (or `Elsa:PlatformIntegration:ShellOverlayPath`) after the environment variables, so the
    /// overlay's shell features win over env; 3.x Server.Web has no such file.
    #[test]
    fn the_modular_38_shell_overlay_overrides_environment_variables() {
        let feature = "CShells:Shells:Default:Features:PostgreSqlWorkflowPersistence";
        let facts = |image: &str, overlay_path: Option<&str>, mount: &str| {
            let mut d = deployment("elsa-server", image, 1);
            let c = &mut d["spec"]["template"]["spec"]["containers"][0];
            c["env"] = serde_json::json!([
                {"name": "CShells__Shells__Default__Features__PostgreSqlWorkflowPersistence__ConnectionString",
                 "value": "Host=postgres;Database=elsa"},
                {"name": "CShells__Shells__Default__Features__PostgreSqlWorkflowPersistence",
                 "value": "true"}
            ]);
            if let Some(p) = overlay_path {
                c["env"]
                    .as_array_mut()
                    .expect("test value")
                    .push(serde_json::json!(
                        {"name": "Elsa__PlatformIntegration__ShellOverlayPath", "value": p}
                    ));
            }
            c["volumeMounts"] = serde_json::json!([{"name": "overlay", "mountPath": mount}]);
            d["spec"]["template"]["spec"]["volumes"] =
                serde_json::json!([{"name": "overlay", "configMap": {"name": "shell-overlay"}}]);
            let mut f = with_deployments(serde_json::json!([d]));
            let data = ConfigMapData {
                data: BTreeMap::from([(
                    "platform-shell-overrides.json".to_owned(),
                    r#"{"CShells":{"Shells":{"Default":{"Features":{"PostgreSqlWorkflowPersistence":false}}}}}"#
                        .to_owned(),
                )]),
                ..Default::default()
            };
            FactUpdate::ConfigSources {
                config_maps: BTreeMap::from([("shell-overlay".to_owned(), Probe::Observed(data))]),
                secrets: BTreeMap::new(),
            }
            .apply(&mut f);
            f
        };
        let modular = "elsaworkflows/elsa-server-and-studio-v3:3.8.0-rc2";
        let f = facts(modular, None, "/app");
        let v = f.effective().expect("model");
        let s = v.config.get(feature).expect("feature set");
        assert_eq!(s.value.expose(), "False", "the overlay wins over env");
        assert!(
            s.source
                .to_string()
                .contains("/app/platform-shell-overrides.json"),
            "{}",
            s.source
        );
        // The overlay at a path of its own choosing, relative to /app.
        let f = facts(
            modular,
            Some("config/platform-shell-overrides.json"),
            "/app/config",
        );
        let v = f.effective().expect("model");
        assert_eq!(
            v.config.get(feature).map(|s| s.value.expose()),
            Some("False")
        );
        // Not mounted where the host looks: env stays in effect.
        let f = facts(modular, None, "/app/config");
        let v = f.effective().expect("model");
        assert_eq!(
            v.config.get(feature).map(|s| s.value.expose()),
            Some("true")
        );
        // Server.Web reads no overlay: env wins.
        let f = facts("elsaworkflows/elsa-server-v3:3.8.0", None, "/app");
        let v = f.effective().expect("model");
        assert_eq!(
            v.config.get(feature).map(|s| s.value.expose()),
            Some("true")
        );
    }
}
