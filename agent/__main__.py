"""``python -m agent``: ``meshplane-agent`` (what ``meshplane pod run`` starts in a pod, with the venv's Python)."""

from agent.cli import main

raise SystemExit(main())
