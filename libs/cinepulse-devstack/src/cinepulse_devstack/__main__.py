from cinepulse_devstack.cli import main

raise SystemExit(main())
