"""The one place that imports the Kaggle client: credentials, download, submit (`python -m src.kaggle_api`).

Credentials, in the client's order: KAGGLE_API_TOKEN (the token or a file holding it),
~/.kaggle/access_token, ~/.kaggle/kaggle.json (or KAGGLE_USERNAME and KAGGLE_KEY). The kaggle
client is imported only inside `connect()`: importing it authenticates over the network. No
token is ever printed, saved in a config or written into a pushed file.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

from src.core.errors import KitError
from src.core.metric_choice import KAGGLE_FILE, kit_name, write_kaggle_metric
from src.core.kaggle_settings import DownloadConfig, SubmitFileConfig
from src.kaggle.archives import unpack
from src.kaggle.scores import record_scores, submission_row, tagged_description

DONE_MARKER = ".kaggle-download.json"


# ---------------------------------------------------------------- credentials and client


def credential_source() -> str:
    """Return where the Kaggle credentials come from (a name, never the secret); raise when there are none.

    Exists so a missing token is one clear sentence instead of the client's help text and exit().
    """
    home = Path.home()
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    config_dirs = [Path(os.environ["KAGGLE_CONFIG_DIR"])] if os.environ.get("KAGGLE_CONFIG_DIR") else []
    config_dirs += [home / ".kaggle", Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "kaggle"]
    files = [home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt",
             home / ".kaggle" / "credentials.json", *(d / "kaggle.json" for d in config_dirs)]
    for file in files:
        if file.is_file() and file.stat().st_size > 0:
            check_credential_file(file)
            return str(file)
    raise KitError("no Kaggle credentials: create a token at https://www.kaggle.com/settings/api and set "
                   "KAGGLE_API_TOKEN to it, or save it in ~/.kaggle/access_token (or kaggle.json there)")


def check_credential_file(file: Path) -> None:
    """Warn when others can read a credentials file (as the kaggle CLI does); refuse a kaggle.json it cannot read.

    A malformed kaggle.json makes the client exit as if Kaggle had refused it, though nothing was
    sent: say the file is malformed and where. The key is never printed (JSON errors give positions only).
    """
    if file.stat().st_mode & 0o044:
        print(f"warning: {file} is readable by other users of this machine: run chmod 600 {file}", file=sys.stderr)
    if file.name != "kaggle.json":
        return
    expected = 'expected {"username": "...", "key": "..."}; download a new one at https://www.kaggle.com/settings/api'
    try:
        data = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise KitError(f"{file} is malformed, not valid JSON ({err}): {expected}") from None
    missing = [k for k in ("username", "key") if not isinstance(data, dict) or not data.get(k)]
    if missing:
        raise KitError(f"{file} is malformed, it has no {' and no '.join(missing)}: {expected}")


def connect():
    """Return an authenticated KaggleApi; unusable credentials raise a KitError naming their source."""
    source = credential_source()
    quiet = io.StringIO()
    try:
        # Importing kaggle authenticates at once and prints its help text when that fails.
        with contextlib.redirect_stdout(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise KitError(f"Kaggle refused the credentials from {source}: create a new token at "
                       "https://www.kaggle.com/settings/api") from None
    except Exception as err:  # requests' connection errors: say where, not the traceback
        raise KitError(f"cannot reach Kaggle to check the credentials from {source}: {short_error(err)}") from None
    return api


def short_error(err: Exception) -> str:
    """Return an HTTP error as 'status: server message' (never headers, so never a token)."""
    response = getattr(err, "response", None)
    if response is None:
        return f"{type(err).__name__}: {err}"
    try:
        message = response.json().get("message", "")
    except ValueError:
        message = response.text[:200]
    return f"HTTP {response.status_code} {message or response.reason}".strip()


def status_of(err: Exception) -> int | None:
    """Return the HTTP status code of a client error, or None for other errors."""
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


@contextlib.contextmanager
def kaggle_errors(what: str, competition: str = ""):
    """Turn the client's HTTP errors into one sentence saying what failed and what to do."""
    try:
        yield
    except KitError:
        raise
    except Exception as err:
        code = status_of(err)
        if code == 403 and competition:
            raise KitError(f"{what}: Kaggle answered 403 for {competition}: accept the competition rules on the "
                           f"website first: https://www.kaggle.com/competitions/{competition}/rules") from None
        if code == 401:
            raise KitError(f"{what}: Kaggle refused the credentials ({credential_source()})") from None
        if code == 404:
            raise KitError(f"{what}: not found on Kaggle ({short_error(err)})") from None
        if code is None and not isinstance(err, (OSError, ValueError)):
            raise  # a bug, not an answer from Kaggle: keep the traceback
        # requests' errors are OSErrors; the client's own checks of ids and files raise ValueError
        raise KitError(f"{what}: {short_error(err)}") from None


# ---------------------------------------------------------------- download


def download(cfg: DownloadConfig) -> Path:
    """Download the competition's archive and unpack it into the target folder; return the folder.

    Files already there are kept (a second call is nearly free); archive entries that would land
    outside the folder are refused and named.
    """
    dest = Path(cfg.data or Path("data") / cfg.competition)
    marker = dest / DONE_MARKER
    if marker.is_file() and not cfg.force:
        print(f"{cfg.competition}: already in {dest} (--force downloads again)")
        return dest
    api = connect()
    dest.mkdir(parents=True, exist_ok=True)
    with kaggle_errors(f"download {cfg.competition}", cfg.competition):
        api.competition_download_files(cfg.competition, path=str(dest), force=cfg.force, quiet=False)
    archive = dest / f"{cfg.competition}.zip"
    if not archive.is_file():
        raise KitError(f"download {cfg.competition}: the client wrote no {archive}")
    counts = unpack(archive, dest)
    try:
        record_metric(api, cfg.competition, dest)
    except KitError as err:  # the record only notes the metric: the data are here all the same
        print(f"warning: {err}: the evaluation metric is unknown; jobs use --metric or the submission format's "
              "default", file=sys.stderr)
    marker.write_text(json.dumps({"competition": cfg.competition, **counts}, indent=2) + "\n")
    if not cfg.keep_zip:
        archive.unlink()
    print(f"{cfg.competition}: {counts['written']} file(s) written, {counts['kept']} already there, "
          f"{len(counts['refused'])} refused, in {dest}")
    return dest


def record_metric(api, competition: str, dest: Path) -> str:
    """Write dest/kaggle_metric.json with the evaluation metric of the competition's record; return its name.

    Jobs map Kaggle's name onto the kit's metrics (src.core.metric_choice). A record without one is
    said and nothing is written: the jobs then fall back on the submission format's metric.
    """
    from kagglesdk.competitions.types.competition_api_service import ApiGetCompetitionRequest

    with kaggle_errors(f"read the record of {competition}", competition), api.build_kaggle_client() as kaggle:
        request = ApiGetCompetitionRequest()
        request.competition_name = competition
        name = (kaggle.competitions.competition_api_client.get_competition(request).evaluation_metric or "").strip()
    if not name:
        print(f"{competition}: Kaggle's record names no evaluation metric; jobs use --metric or the submission "
              "format's default")
        return ""
    write_kaggle_metric(dest, competition, name)
    known = kit_name(name)
    meaning = f"the kit scores it as {known}" if known else "not one the kit knows: jobs need --metric"
    print(f"{competition}: evaluation metric {name!r} ({meaning}), in {dest / KAGGLE_FILE}")
    return name


# ---------------------------------------------------------------- submit


def submit_file(cfg: SubmitFileConfig) -> dict:
    """Submit the CSV; with --wait, poll until Kaggle scores it. Return {'ref', 'status', 'public_score'}."""
    path = Path(cfg.file)
    if not path.is_file():
        raise KitError(f"submit: {path} does not exist (python -m src.submit writes submissions/NAME.csv)")
    api = connect()
    description = tagged_description(path.stem, cfg.message)  # how the ledger finds this upload's scores
    with kaggle_errors(f"submit {path} to {cfg.competition}", cfg.competition):
        response = api.competition_submit(str(path), description, cfg.competition, quiet=True)
    if response.message == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
        raise KitError(f"submit: uploading {path} to Kaggle failed")
    print(f"submitted {path} to {cfg.competition} as {description!r}: {response.message} (ref {response.ref})")
    result = {"ref": response.ref, "status": "pending", "public_score": None}
    if cfg.wait:
        result = wait_for_score(api, cfg, response.ref)
    return result


def wait_for_score(api, cfg: SubmitFileConfig, ref: int) -> dict:
    """Poll the competition's submissions until `ref` is scored or failed; return its state."""
    deadline = time.monotonic() + cfg.timeout
    while True:
        with kaggle_errors(f"list submissions of {cfg.competition}", cfg.competition):
            found = [s for s in api.competition_submissions(cfg.competition) or [] if s and s.ref == ref]
        if found:
            sub = found[0]
            status = sub.status.name.lower()
            if status == "complete":
                kept = record_scores(Path(cfg.file).parent, [submission_row(sub, cfg.competition)])
                print(f"public score: {sub.public_score} (kept in {kept})")
                return {"ref": ref, "status": status, "public_score": sub.public_score}
            if status == "error":
                record_scores(Path(cfg.file).parent, [submission_row(sub, cfg.competition)])
                raise KitError(f"submission {ref} to {cfg.competition} failed: {sub.error_description}")
        if time.monotonic() > deadline:
            raise KitError(f"submission {ref}: no score after {cfg.timeout:.0f} s (it may still come: "
                           f"kaggle competitions submissions {cfg.competition})")
        print(f"submission {ref}: pending", flush=True)
        time.sleep(cfg.poll_seconds)


def list_submissions(api, competition: str, page_size: int = 20, max_pages: int = 500) -> list:
    """Return every submission of the competition (Kaggle's ApiSubmission objects), newest first.

    Kaggle answers in pages (20 a page, as its CLI asks): asked page by page until a page is empty or
    repeats what came.
    """
    found, seen = [], set()
    for page in range(1, max_pages + 1):
        with kaggle_errors(f"list submissions of {competition}", competition):
            batch = [s for s in api.competition_submissions(competition, page_number=page, page_size=page_size) or []
                     if s is not None and s.ref not in seen]
        if not batch:
            break
        found += batch
        seen.update(s.ref for s in batch)
    return found


def fetch_scores(competition: str, folder) -> list:
    """Fetch the competition's submissions list and keep every row in FOLDER/kaggle_scores.csv; return the rows."""
    api = connect()
    rows = [submission_row(sub, competition) for sub in list_submissions(api, competition)]
    if rows:
        record_scores(folder, rows)
    return rows


def split_ref(ref: str, what: str, parts: int = 2) -> list:
    """Return owner/slug split in two, or raise naming the argument and the expected form."""
    pieces = ref.split("/")
    if len(pieces) != parts or not all(pieces):
        raise KitError(f"{what}: expected owner/slug, got {ref!r}")
    if not 6 <= len(pieces[-1]) <= 50 or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", pieces[-1]):
        raise KitError(f"{what}: slug {pieces[-1]!r} must be 6-50 lowercase letters, digits and dashes")
    return pieces
