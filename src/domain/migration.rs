//! How a deployment migrates Elsa's database: the recognition of migration steps (init
//! containers of the Elsa pod, Jobs and CronJobs of the namespace) and what real Elsa makes of
//! them (ELSA-FACTS §2 "How migrations run at startup", §6; elsa-audit §2).
//!
//! - Every stock host migrates its own database at startup (`RunMigrationsStartupTask`, or
//!   `RunMigrationsHostedService` in 3.0–3.2); Elsa.Server.Web 3.3–3.5 hard-codes
//!   `runEFCoreMigrations = true` and migrates Identity, Management, Runtime and Alterations on
//!   the `DatabaseProvider` choice (elsa-audit §2, "Which contexts each stock host migrates").
//! - The images are ASP.NET **runtime** images: no SDK, no `dotnet-ef`, so `dotnet ef …` cannot
//!   run in them; and the design-time factories take the connection string only from
//!   `-- --connectionString …`, never from `ConnectionStrings__PostgreSql` (ELSA-FACTS §2
//!   "Design-time factories", §6).
//! - `Elsa__AutoMigrate` / `Elsa:AutoMigrate` and `MigrateElsaDatabaseAsync` exist in no version
//!   (ELSA-FACTS §6).
//!
//! Pure: functions of pod specs and Job objects.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::domain::elsa::{self, ElsaVersion, Flavor, ImageInfo};

/// Where a step sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// An init container of the Elsa pod: runs before every start of every Elsa pod.
    InitContainer,
    Job,
    CronJob,
}

/// What a step's command does, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// `dotnet ef …` / `dotnet-ef …` (the EF Core tools: an SDK).
    DotnetEf,
    /// An EF Core migrations bundle (`efbundle`, built with `dotnet ef migrations bundle`).
    Bundle,
    /// Some other command in an Elsa image (or its entrypoint): the server itself, which
    /// migrates at start.
    ElsaImage,
}

/// One recognised migration step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    /// `job/elsa-migrations`, `cronjob/x`, or the Elsa workload's reference for an init container.
    pub owner: String,
    pub container: String,
    pub image: String,
    pub image_info: Option<ImageInfo>,
    pub runs: Runs,
    /// The command line as written (scrubbed already by gathering), for evidence.
    pub command_line: String,
    /// The command passes the connection string to the design-time factory
    /// (`-- --connectionString …`, or a bundle's `--connection`).
    pub passes_connection: bool,
    /// Knobs that do not exist which the step relies on (`Elsa__AutoMigrate`,
    /// `MigrateElsaDatabaseAsync`).
    pub knobs: Vec<String>,
    /// References in the step container's own env to variables it defines only further down
    /// (the guide's Job lists the connection string before `POSTGRES_PASSWORD`): the kubelet
    /// leaves them literal, so the step logs in with the text `$(POSTGRES_PASSWORD)`.
    pub later_refs: Vec<crate::domain::env_expand::LaterReference>,
}

impl Step {
    /// `init container migrations of deployment/elsa-server`, `job/elsa-migrations`.
    pub fn describe(&self) -> String {
        match self.kind {
            StepKind::InitContainer => {
                format!("init container {} of {}", self.container, self.owner)
            }
            StepKind::Job | StepKind::CronJob => {
                format!("{} (container {})", self.owner, self.container)
            }
        }
    }

    /// The Elsa version the step's image names, if it is an Elsa image that names one.
    pub fn version(&self) -> Option<ElsaVersion> {
        self.image_info.as_ref().and_then(|i| i.version)
    }

    /// Whether the step's image is an official Elsa server image (a runtime image without the
    /// SDK). A custom image named after Elsa may hold anything.
    pub fn elsa_image(&self) -> bool {
        self.image_info
            .as_ref()
            .is_some_and(|i| i.official && i.flavor != Flavor::Studio)
    }
}

/// The knobs that exist in no Elsa version.
pub const NO_SUCH_KNOBS: &[&str] = &["Elsa__AutoMigrate", "Elsa:AutoMigrate"];
/// The method the guide calls, which no Elsa version has.
pub const NO_SUCH_METHOD: &str = "MigrateElsaDatabaseAsync";

/// The command line: command then args, joined by spaces.
fn command_line(c: &Container) -> String {
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a command line runs, when it is a migration.
pub fn runs(line: &str) -> Option<Runs> {
    let lc = line.to_ascii_lowercase();
    let words: Vec<&str> = lc.split_whitespace().collect();
    let dotnet_ef = lc.contains("dotnet-ef")
        || words
            .windows(2)
            .any(|w| w[0].ends_with("dotnet") && w[1] == "ef");
    if dotnet_ef {
        return Some(Runs::DotnetEf);
    }
    if lc.contains("efbundle") {
        return Some(Runs::Bundle);
    }
    if words
        .windows(2)
        .any(|w| w[0] == "database" && w[1] == "update")
    {
        // `database update` without `dotnet ef` in front: an alias or a wrapper of the tools.
        return Some(Runs::DotnetEf);
    }
    None
}

/// The env names of a container that are knobs no Elsa has, and the method in its command.
fn knobs(c: &Container, line: &str) -> Vec<String> {
    let mut out: Vec<String> = c
        .env
        .iter()
        .flatten()
        .filter(|e| NO_SUCH_KNOBS.iter().any(|k| e.name.eq_ignore_ascii_case(k)))
        .map(|e| e.name.clone())
        .collect();
    if line.contains(NO_SUCH_METHOD) {
        out.push(NO_SUCH_METHOD.to_owned());
    }
    out
}

/// The container as a migration step, when its image is an Elsa server image or its command
/// runs the EF Core tools, `database update` or a migrations bundle.
pub fn step(kind: StepKind, owner: &str, c: &Container) -> Option<Step> {
    let image = c.image.clone().unwrap_or_default();
    let image_info = elsa::classify_image(&image).filter(|i| i.flavor != Flavor::Studio);
    let line = command_line(c);
    let runs = match (runs(&line), &image_info) {
        (Some(r), _) => r,
        (None, Some(_)) => Runs::ElsaImage,
        (None, None) => return None,
    };
    let lc = line.to_ascii_lowercase();
    Some(Step {
        kind,
        owner: owner.to_owned(),
        container: c.name.clone(),
        image,
        image_info,
        runs,
        passes_connection: lc.contains("--connectionstring") || lc.contains("--connection "),
        knobs: knobs(c, &line),
        later_refs: crate::domain::env_expand::later_references(c.env.as_deref().unwrap_or(&[])),
        command_line: line,
    })
}

/// The init containers of the Elsa pod that migrate (`owner` is the workload's reference).
pub fn init_steps(owner: &str, spec: &PodSpec) -> Vec<Step> {
    spec.init_containers
        .iter()
        .flatten()
        .filter_map(|c| step(StepKind::InitContainer, owner, c))
        .collect()
}

/// The containers of a Job's pod template that migrate.
pub fn job_steps(job: &Job) -> Vec<Step> {
    let owner = format!("job/{}", job.metadata.name.as_deref().unwrap_or_default());
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|spec| containers(spec, StepKind::Job, &owner))
        .unwrap_or_default()
}

/// The containers of a CronJob's job template that migrate.
pub fn cron_job_steps(cj: &CronJob) -> Vec<Step> {
    let owner = format!(
        "cronjob/{}",
        cj.metadata.name.as_deref().unwrap_or_default()
    );
    cj.spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .map(|spec| containers(spec, StepKind::CronJob, &owner))
        .unwrap_or_default()
}

fn containers(spec: &PodSpec, kind: StepKind, owner: &str) -> Vec<Step> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| step(kind, owner, c))
        .collect()
}

/// Whether a Job migrates (gathering reads the pods and logs of these only).
pub fn is_migration_job(job: &Job) -> bool {
    !job_steps(job).is_empty()
}

/// Whether this stock host migrates its database at startup by itself, so a separate step is
/// not needed: Elsa.Server.Web 3.3–3.5 on PostgreSQL (elsa-audit §2; ELSA-FACTS §2:
/// `runEFCoreMigrations = true`, and `RunMigrations = false` was even ignored before 3.5).
pub fn self_migrates_postgres(flavor: Flavor, version: ElsaVersion) -> bool {
    flavor == Flavor::ServerWeb && (3, 3) <= version.mm() && version.mm() <= (3, 5)
}

/// Whether this stock host applies pending PostgreSQL migrations at startup when configured
/// for PostgreSQL: Server.Web 3.3–3.5, ServerAndStudio 3.3+ (Management and Runtime on the
/// `DatabaseProvider` choice), the 3.8 Modular Server (`RunMigrations` defaults to true)
/// (elsa-audit §2; ELSA-FACTS §2). Server.Web 3.0–3.2 and 3.6+ never use PostgreSQL.
pub fn migrates_postgres_at_startup(flavor: Flavor, version: ElsaVersion) -> bool {
    match flavor {
        Flavor::ServerWeb => self_migrates_postgres(flavor, version),
        Flavor::ServerAndStudio => version.mm() >= (3, 3),
        Flavor::ModularServer => true,
        Flavor::Studio | Flavor::Custom => false,
    }
}

/// What a step is wrong about, for this server (most serious first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `dotnet ef` in a runtime image, or without the design-time connection string.
    DotnetEf { in_runtime_image: bool },
    /// It relies on knobs no Elsa has.
    NoSuchKnob(Vec<String>),
    /// The step's image is another Elsa minor than the server's.
    VersionMismatch { step: ElsaVersion },
    /// The server migrates itself at start: the step is not needed.
    Unneeded,
}

/// Judges one step against the server's (flavour, version).
pub fn judge(
    step: &Step,
    server_flavor: Flavor,
    server_version: Option<ElsaVersion>,
) -> Option<Problem> {
    if step.runs == Runs::DotnetEf && (step.elsa_image() || !step.passes_connection) {
        return Some(Problem::DotnetEf {
            in_runtime_image: step.elsa_image(),
        });
    }
    if !step.knobs.is_empty() {
        return Some(Problem::NoSuchKnob(step.knobs.clone()));
    }
    if let (Some(s), Some(v)) = (step.version(), server_version) {
        // Within a minor every patch tag ships the same migrations (elsa-audit §1), so only
        // another minor migrates to another schema.
        if s.mm() != v.mm() {
            return Some(Problem::VersionMismatch { step: s });
        }
    }
    if let Some(v) = server_version
        && self_migrates_postgres(server_flavor, v)
    {
        return Some(Problem::Unneeded);
    }
    None
}

/// A Job's state, from its status as the Job controller writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// `Complete=True`.
    Complete { completed: Option<String> },
    /// `Failed=True`, with its reason (`BackoffLimitExceeded`, `DeadlineExceeded`) and message.
    Failed {
        reason: Option<String>,
        message: Option<String>,
        failed: i32,
    },
    /// Pods are active (or none yet): still running since `started`.
    Running {
        started: Option<String>,
        failed: i32,
    },
    /// `spec.suspend: true`.
    Suspended,
}

/// The state of a Job.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    if let Some(c) = cond("Failed") {
        return JobState::Failed {
            reason: c.reason,
            message: c.message,
            failed: status.failed.unwrap_or(0),
        };
    }
    if cond("Complete").is_some() {
        return JobState::Complete {
            completed: status.completion_time.map(|t| t.0.to_string()),
        };
    }
    if job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false) {
        return JobState::Suspended;
    }
    JobState::Running {
        started: status.start_time.map(|t| t.0.to_string()),
        failed: status.failed.unwrap_or(0),
    }
}

/// A line of a migration step's log that tells why it failed (or that it worked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSignature {
    pub id: &'static str,
    pub needle: &'static str,
    pub meaning: &'static str,
}

/// What the .NET host, the EF Core tools and a bundle print, besides the PostgreSQL errors of
/// [`crate::domain::log_signatures`].
pub static STEP_SIGNATURES: &[StepSignature] = &[
    StepSignature {
        id: "dotnet-ef-missing",
        needle: "Could not execute because the specified command or file was not found",
        meaning: "the image has no dotnet-ef tool (the Elsa images are runtime images without the SDK)",
    },
    StepSignature {
        id: "sdk-missing",
        needle: "No .NET SDKs were found",
        meaning: "the image has the .NET runtime only: `dotnet ef` needs the SDK",
    },
    StepSignature {
        id: "no-project",
        needle: "No project was found",
        meaning: "dotnet ef needs the source project; the image holds compiled assemblies only",
    },
    StepSignature {
        id: "design-time-factory",
        needle: "Unable to create a 'DbContext'",
        meaning: "the design-time factory could not build the context (it reads `-- --connectionString`, not ConnectionStrings__PostgreSql)",
    },
    StepSignature {
        id: "not-found-sh",
        needle: "dotnet: not found",
        meaning: "the image has no dotnet on the PATH",
    },
];

/// The signatures a log holds: the step's own, then the PostgreSQL and network ones
/// (`domain::log_signatures`), each once, with the first line that matched.
pub fn log_findings(text: &str) -> Vec<(&'static str, &'static str, String)> {
    let mut out: Vec<(&'static str, &'static str, String)> = Vec::new();
    for line in text.lines() {
        for s in STEP_SIGNATURES {
            if line.contains(s.needle) && !out.iter().any(|(id, _, _)| *id == s.id) {
                out.push((s.id, s.meaning, line.trim().to_owned()));
            }
        }
        for s in crate::domain::log_signatures::matching(line) {
            if !out.iter().any(|(id, _, _)| *id == s.id) {
                out.push((s.id, s.meaning, line.trim().to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "migrations".into(),
            image: Some(image.into()),
            command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            args: Some(args.iter().map(|s| (*s).to_owned()).collect()),
            ..Container::default()
        }
    }

    /// The guide's init container and Job (kubernetes-basics-guide "Running Database
    /// Migrations", Options 1 and 3), verbatim.
    #[test]
    fn the_guides_steps_are_dotnet_ef_in_a_runtime_image() {
        let c = container(
            "elsaworkflows/elsa-server:latest",
            &["/bin/sh", "-c"],
            &[
                "dotnet ef database update --context ManagementElsaDbContext\ndotnet ef database update --context RuntimeElsaDbContext\n",
            ],
        );
        let s = step(StepKind::Job, "job/elsa-migrations", &c).expect("a step");
        assert_eq!(s.runs, Runs::DotnetEf);
        assert!(s.elsa_image());
        assert_eq!(
            judge(&s, Flavor::ServerWeb, Some(ElsaVersion::new(3, 5))),
            Some(Problem::DotnetEf {
                in_runtime_image: true
            })
        );
    }

    #[test]
    fn dotnet_ef_in_an_sdk_image_needs_the_connection_string_argument() {
        let plain = container(
            "mcr.microsoft.com/dotnet/sdk:9.0",
            &["dotnet", "ef", "database", "update"],
            &[],
        );
        let s = step(StepKind::Job, "job/m", &plain).expect("step");
        assert_eq!(
            judge(&s, Flavor::ServerWeb, None),
            Some(Problem::DotnetEf {
                in_runtime_image: false
            })
        );
        let with = container(
            "mcr.microsoft.com/dotnet/sdk:9.0",
            &["dotnet", "ef", "database", "update"],
            &["--", "--connectionString", "Host=pg"],
        );
        let s = step(StepKind::Job, "job/m", &with).expect("step");
        assert_eq!(judge(&s, Flavor::ServerWeb, None), None);
    }

    #[test]
    fn a_bundle_of_another_version_and_an_unneeded_step() {
        let b = container("registry.local/elsa-migrate:3.4.0", &["./efbundle"], &[]);
        let s = step(StepKind::Job, "job/m", &b).expect("a bundle is a step");
        assert_eq!(s.runs, Runs::Bundle);
        // A custom image named after Elsa carries its tag's version.
        assert_eq!(
            judge(&s, Flavor::ServerWeb, Some(ElsaVersion::new(3, 5))),
            Some(Problem::VersionMismatch {
                step: ElsaVersion {
                    major: 3,
                    minor: 4,
                    patch: Some(0)
                }
            })
        );
        let same = container("elsaworkflows/elsa-server-v3-5:3.5.3", &["./efbundle"], &[]);
        let s = step(StepKind::Job, "job/m", &same).expect("step");
        assert_eq!(
            judge(
                &s,
                Flavor::ServerWeb,
                Some(ElsaVersion {
                    major: 3,
                    minor: 5,
                    patch: Some(3)
                })
            ),
            Some(Problem::Unneeded)
        );
        // 3.6+ Server.Web: not self-migrating PostgreSQL (it does not use it).
        assert!(!self_migrates_postgres(
            Flavor::ServerWeb,
            ElsaVersion::new(3, 6)
        ));
        assert!(self_migrates_postgres(
            Flavor::ServerWeb,
            ElsaVersion::new(3, 3)
        ));
        assert!(!self_migrates_postgres(
            Flavor::ServerWeb,
            ElsaVersion::new(3, 2)
        ));
    }

    #[test]
    fn unrelated_containers_are_not_steps_and_knobs_are_named() {
        assert!(
            step(
                StepKind::InitContainer,
                "d",
                &container(
                    "busybox",
                    &["sh", "-c", "until nc -z postgres 5432; do sleep 1; done"],
                    &[]
                )
            )
            .is_none()
        );
        let mut c = container("elsaworkflows/elsa-server-v3-5:3.5.3", &[], &[]);
        c.command = None;
        c.args = None;
        c.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "Elsa__AutoMigrate".into(),
            value: Some("true".into()),
            ..Default::default()
        }]);
        let s = step(StepKind::InitContainer, "deployment/elsa", &c).expect("an Elsa image");
        assert_eq!(s.runs, Runs::ElsaImage);
        assert_eq!(
            judge(&s, Flavor::ServerWeb, None),
            Some(Problem::NoSuchKnob(vec!["Elsa__AutoMigrate".into()]))
        );
        assert_eq!(
            runs("sh -c 'dotnet-ef database update'"),
            Some(Runs::DotnetEf)
        );
        assert_eq!(runs("/app/migrate database update"), Some(Runs::DotnetEf));
        assert_eq!(runs("echo hello"), None);
    }

    #[test]
    fn job_states_from_real_status_shapes() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "elsa-migrations"},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"failed": 1, "startTime": "2024-05-01T10:00:00Z",
              "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }))
        .expect("job");
        assert!(
            matches!(job_state(&job), JobState::Failed { reason: Some(r), failed: 1, .. } if r == "BackoffLimitExceeded")
        );
        let running: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "m"}, "status": {"active": 1, "startTime": "2024-05-01T10:00:00Z"}
        }))
        .expect("job");
        assert!(matches!(
            job_state(&running),
            JobState::Running {
                started: Some(_),
                ..
            }
        ));
        let done: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "m"}, "status": {"succeeded": 1, "completionTime": "2024-05-01T10:01:00Z",
              "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
        }))
        .expect("job");
        assert!(matches!(job_state(&done), JobState::Complete { .. }));
    }

    #[test]
    fn log_signatures_of_a_failed_step() {
        let log = "Could not execute because the specified command or file was not found.\nPossible reasons for this include:\n";
        let found = log_findings(log);
        assert_eq!(found.first().map(|f| f.0), Some("dotnet-ef-missing"));
        let pg = "Npgsql.PostgresException (0x80004005): 28P01: password authentication failed for user \"elsa\"";
        assert_eq!(log_findings(pg).first().map(|f| f.0), Some("pg-28P01"));
    }
}
