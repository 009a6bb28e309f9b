from skyscan_tui.cli import main

raise SystemExit(main())
