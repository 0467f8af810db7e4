"""`python -m bridge` is `twill-bridge`."""

from bridge.cli import main

raise SystemExit(main())
