"""`python -m server`: see server.main."""

from __future__ import annotations

from server.main import main

raise SystemExit(main())
