"""The Airflow 3 UI in a real browser: Debian's Chromium, driven by Playwright, headless.

Playwright cannot download its own browsers here, so it launches the system's ``/usr/bin/chromium``
(``.ci/run`` installs it). :func:`require_browser` skips a developer's run without one and fails in
CI, where a skip would hide that nothing was checked (as ``require_cluster`` does for the control
plane).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
ENABLE_HINT = (
    "no browser for the UI tests: `apt-get install -y chromium` and "
    "`pip install -e '.[test]'` (Playwright drives /usr/bin/chromium)"
)
TIMEOUT_MS = 30_000
"""Per action and per expectation: the UI's first load on a busy 2-core machine takes seconds."""


def require_browser() -> None:
    """Skip without Playwright or Chromium, or fail in CI, which installs both."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        missing.append("the playwright package")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if not missing:
        return
    message = f"{' and '.join(missing)} missing: {ENABLE_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


class AirflowUI:
    """One signed-in browser page on an Airflow api-server; a context manager that closes it all."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None

    def __enter__(self) -> AirflowUI:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional until used)

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            self._page = self._browser.new_page(viewport={"width": 1600, "height": 1000})
            self._page.set_default_timeout(TIMEOUT_MS)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    @property
    def page(self) -> Page:
        assert self._page is not None, "use AirflowUI as a context manager"
        return self._page

    def sign_in(self) -> None:
        """SimpleAuthManager's form, as a user fills it; back on the UI once the token is set."""
        page = self.page
        page.goto(f"{self.base_url}/auth/login")
        page.get_by_label(re.compile("username", re.IGNORECASE)).fill(self._username)
        page.get_by_label(re.compile("password", re.IGNORECASE)).fill(self._password)
        page.get_by_role("button", name=re.compile("sign in|log in|login", re.IGNORECASE)).click()
        page.wait_for_url(lambda url: "/auth/login" not in url)

    def open_task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> None:
        """The task instance's page, whose first tab is its log, at ``try_number``."""
        self.page.goto(f"{self._task_url(dag_id, run_id, task_id)}?try_number={try_number}")

    def wrap_log_lines(self) -> None:
        """The log viewer's "w" shortcut: long lines (a kubectl fix) wrap instead of running off."""
        self.page.keyboard.press("w")

    def open_task_audit_log(self, dag_id: str, run_id: str, task_id: str) -> None:
        """The task instance's "Audit Log" tab."""
        self.page.goto(f"{self._task_url(dag_id, run_id, task_id)}/events")

    def _task_url(self, dag_id: str, run_id: str, task_id: str) -> str:
        path = "/".join(quote(part, safe="") for part in (dag_id, "runs", run_id, "tasks", task_id))
        return f"{self.base_url}/dags/{path}"

    def wait_for_text(self, text: str) -> None:
        """Until ``text`` is shown on the page (the log loads after the page, line by line)."""
        from playwright.sync_api import expect  # noqa: PLC0415

        expect(self.page.get_by_text(text, exact=False).first).to_be_visible(timeout=TIMEOUT_MS)

    def screenshot(self, path: Path, *copies: Path) -> Path:
        """The whole page, saved to ``path`` and copied to each of ``copies``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        for copy in copies:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        return path
