"""CLI subcommands, one module per concern; each registers itself on `deploy_manager.cli.app`."""
