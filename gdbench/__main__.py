from gdbench.cli import main

raise SystemExit(main())
