from ctl.cli import main

raise SystemExit(main())
