from daemon.commands.main import main

raise SystemExit(main())
