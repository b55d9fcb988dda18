//! The tools' command lines (`happy-docs`, `happy-doctor`, `resolve-istio-versions`; their
//! definitions are in `src/cli/`): what each reads from its arguments, and that bad arguments
//! name the option at fault and exit 2.

mod resolve {
    use clap::Parser as _;
    use happy_istio::cli::resolve::*;

    fn args(list: &[&str]) -> Result<ResolveArgs, clap::Error> {
        ResolveArgs::try_parse_from(
            std::iter::once("resolve-istio-versions").chain(list.iter().copied()),
        )
    }

    #[test]
    fn arguments() {
        let _processes = crate::processes::shared();
        let default = args(&[]).unwrap();
        assert_eq!((default.minors, default.no_dev), (3, false));
        let custom = args(&["--minors", "2", "--no-dev"]).unwrap();
        assert_eq!((custom.minors, custom.no_dev), (2, true));
        for (bad, named) in [
            (&["--minors"][..], "--minors"),
            (&["--minors", "0"][..], "0"),
            (&["--bogus"][..], "--bogus"),
        ] {
            let err = args(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().contains(named), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_unresolved_dev_build_is_an_error_annotation_on_one_line() {
        let _processes = crate::processes::shared();
        let error = happy_istio::ProvisionError::Download {
            url: "the Istio dev build pointer".into(),
            reason: "every source failed: a: HTTP 404\nb: 100% gone".into(),
        };
        let line = unresolved_dev_annotation(&error);
        assert!(
            line.starts_with("::error title=Istio dev build::"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("ISTIO_VERSION=dev") && line.contains("HTTP 404%0Ab: 100%25 gone"),
            "{line}"
        );
    }
}

mod docs {
    use std::path::PathBuf;

    use clap::Parser as _;
    use happy_istio::cli::docs::*;
    use happy_istio::docs::{DEFAULT_STRIP_NIGHTS, Options, default_features_dir};

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        DocsArgs::try_parse_from(std::iter::once("happy-docs").chain(args.iter().copied()))
            .map(DocsArgs::options)
    }

    #[test]
    fn several_report_directories_follow_one_flag() {
        let _processes = crate::processes::shared();
        let o = parse(&["--reports", "a", "b", "--earlier", "c", "--days", "7"]).unwrap();
        assert_eq!(o.reports, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(o.earlier, vec![PathBuf::from("c")]);
        assert_eq!(o.days, 7);
        assert_eq!(o.strip_nights, DEFAULT_STRIP_NIGHTS);
        assert_eq!(o.features, default_features_dir());
    }

    #[test]
    fn bad_arguments_name_the_option_and_exit_2() {
        let _processes = crate::processes::shared();
        for (args, named) in [
            (&["--days", "soon"][..], "--days"),
            (&["--reports"][..], "--reports"),
            (&["--strip-nights", "0"][..], "--strip-nights"),
            (&["--bogus"][..], "--bogus"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(named), "{args:?}: {err}");
        }
    }
}

mod doctor {
    use clap::Parser as _;
    use happy_istio::cli::doctor::*;
    use happy_istio::provision::preflight::Target;
    use happy_istio::settings::ClusterChoice;

    fn args(list: &[&str]) -> Result<DoctorArgs, clap::Error> {
        DoctorArgs::try_parse_from(std::iter::once("happy-doctor").chain(list.iter().copied()))
    }

    #[test]
    fn the_target_comes_from_the_argument_then_happy_cluster() {
        let _processes = crate::processes::shared();
        assert_eq!(
            args(&["k3s"]).unwrap().target(ClusterChoice::Kind),
            Target::K3s
        );
        assert_eq!(args(&[]).unwrap().target(ClusterChoice::K3s), Target::K3s);
        assert_eq!(args(&[]).unwrap().target(ClusterChoice::Auto), Target::Kind);
        assert_eq!(
            args(&["kind"]).unwrap().target(ClusterChoice::K3s),
            Target::Kind
        );
        let err = args(&["minikube"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("minikube"), "{err}");
        assert_eq!(args(&["kind", "k3s"]).unwrap_err().exit_code(), 2);
    }
}
