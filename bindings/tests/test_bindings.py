"""The Python bindings of seedling-ffi, against a real `seedling serve --demo`.

Run by bindings/test.sh, which builds the library, generates the bindings
into a temporary folder and runs `python3 -m unittest` with:

  SEEDLING_FFI_PY   the folder holding seedling_ffi.py and libseedling_ffi.so
  SEEDLING_BIN      the server binary (`seedling`)

Standard library only: nothing to install.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, os.environ["SEEDLING_FFI_PY"])
import seedling_ffi as ffi  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "sync-core" / "tests" / "vectors" / "client.json"
PASSWORD = "seedling-demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`seedling serve --demo` on SQLite in a temporary folder."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="seedling-ffi-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "SEEDLING_DATABASE_URL", "SEEDLING_CONFIG")}
        env["SEEDLING_DATA_DIR"] = self.dir.name
        env.setdefault("RUST_LOG", "warn")
        self.log = open(Path(self.dir.name) / "server.log", "wb")
        self.proc = subprocess.Popen(
            [os.environ["SEEDLING_BIN"], "serve", "--demo", "--bind", f"127.0.0.1:{self.port}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seedling exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"seedling not ready after 180 s: {self.output()}")
            time.sleep(0.1)

    def output(self):
        self.log.flush()
        return (Path(self.dir.name) / "server.log").read_text(errors="replace")[-4000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.dir.cleanup()

    def call(self, method, path, token=None, body=None):
        """A raw API call, independent of the bindings."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def login(self, username):
        status, body = self.call("POST", "/api/v1/auth/login", body={
            "username": username, "password": PASSWORD,
            "device_id": str(uuid.uuid4()), "device_name": "bindings test (raw)"})
        assert status == 200, (status, body)
        return body["access_token"]

    def pulled_records(self, token):
        """Every record of the caller's scope, through the server's own pull."""
        records, cursor = {}, None
        for _ in range(1000):
            path = "/api/v1/sync/pull?protocol_version=1&limit=500"
            if cursor:
                path += f"&cursor={urllib.parse.quote(cursor)}"
            status, page = self.call("GET", path, token)
            assert status == 200, (status, page)
            for r in page["changes"]:
                records[r["id"]] = r
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return records
        raise AssertionError("the pull never ended")


def field(record, name):
    """A register value of a pulled record."""
    return record["fields"][name]["register"]["value"]


class CoreFunctions(unittest.TestCase):
    """The clock and due-date functions answer as sync-core's Rust does: the
    vectors are written by sync-core's own functions
    (sync-core/tests/vectors.rs fails when the file is stale)."""

    @classmethod
    def setUpClass(cls):
        cls.vectors = json.loads(VECTORS.read_text())

    def test_every_clock_run_ticks_and_observes_as_sync_core(self):
        runs = self.vectors["hlc"]["clock_runs"]
        steps = 0
        for run in runs:
            if run["start"] is None:
                clock = ffi.HlcClock(run["node"], run["max_skew_ms"])
            else:
                clock = ffi.HlcClock.resume(run["start"], run["max_skew_ms"])
            for step in run["steps"]:
                if step["op"] == "tick":
                    self.assertEqual(clock.tick(step["now"]), step["expect"])
                else:
                    seen = clock.observe(step["remote"], step["now"])
                    self.assertEqual((seen.local, seen.skewed), (step["expect"], step["skewed"]))
                self.assertEqual(clock.last(), step["expect"])
                steps += 1
        self.assertGreater(steps, 10)

    def test_clock_text_orders_parses_and_refuses_as_sync_core(self):
        hlc = self.vectors["hlc"]
        for a, b, order in hlc["ordering"]:
            self.assertEqual(ffi.hlc_compare(a, b), order, (a, b))
        for case in hlc["round_trips"]:
            parts = ffi.hlc_parse(case["text"])
            self.assertEqual((parts.wall_ms, parts.counter, parts.node),
                             (case["wall_ms"], case["counter"], case["node"]))
            self.assertEqual(ffi.hlc_format(parts), case["text"])
        for text in hlc["invalid"]:
            with self.assertRaises(ffi.SeedlingError.InvalidInput, msg=text):
                ffi.hlc_parse(text)
        self.assertEqual(ffi.default_max_forward_skew_ms(), 5 * 60 * 1000)

    def test_every_due_case_answers_as_sync_core(self):
        due = self.vectors["due"]
        intervals = ffi.VisitIntervals(
            by_category=due["intervals"]["by_category"],
            fallback_days=due["intervals"]["fallback_days"])
        defaults = ffi.default_visit_intervals()
        self.assertEqual((dict(defaults.by_category), defaults.fallback_days),
                         (due["intervals"]["by_category"], due["intervals"]["fallback_days"]))
        states = set()
        for case in due["cases"]:
            child = ffi.DueInput(
                category=case["category"], active=case["active"],
                interval_override_days=case["interval_override_days"],
                registered_on=case["registered_on"], last_visit_on=case["last_visit_on"])
            self.assertEqual(ffi.due_date(child, intervals), case["due_date"], case)
            got = ffi.due_status(child, case["today"], intervals)
            self.assertEqual(as_wire(got), case["status"], case)
            states.add(case["status"]["state"])
        self.assertEqual(states, {"upcoming", "due_today", "overdue", "not_tracked"})
        with self.assertRaises(ffi.SeedlingError.InvalidInput):
            ffi.due_status(child, "2026-02-30", intervals)

    def test_the_district_day_turns_at_16_00_utc_in_shanghai(self):
        # 2026-12-05T16:00:00Z = 1796486400000 ms.
        self.assertEqual(ffi.district_day(1796486400000 - 1, "Asia/Shanghai"), "2026-12-05")
        self.assertEqual(ffi.district_day(1796486400000, "Asia/Shanghai"), "2026-12-06")
        self.assertEqual(ffi.district_day(1796486400000, "UTC"), "2026-12-05")
        with self.assertRaises(ffi.SeedlingError.InvalidInput):
            ffi.district_day(0, "Asia/Beijing")


def as_wire(status):
    """A DueStatus as sync-core serialises it (the vectors' form)."""
    if status.is_UPCOMING():
        return {"state": "upcoming", "due": status.due, "days_left": status.days_left}
    if status.is_DUE_TODAY():
        return {"state": "due_today", "due": status.due}
    if status.is_OVERDUE():
        return {"state": "overdue", "due": status.due, "days_overdue": status.days_overdue}
    assert status.is_NOT_TRACKED(), status
    return {"state": "not_tracked"}


class PhoneThroughTheBindings(unittest.TestCase):
    """A director's phone, driven only through the bindings, against the
    real server; checked through the server's own API and a second phone."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.phones = tempfile.TemporaryDirectory(prefix="seedling-ffi-phones-")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.phones.cleanup()

    def db(self, name):
        return str(Path(self.phones.name) / f"{self.id().rsplit('.', 1)[-1]}-{name}.db")

    def test_a_visit_recorded_offline_reaches_the_server_and_a_second_phone(self):
        url = self.server.url
        path_a = self.db("a")
        phone = ffi.SeedlingClient(path_a, url)
        with self.assertRaises(ffi.SeedlingError.InvalidCredentials):
            phone.sign_in("director-001", "wrong password", "phone A")
        user = phone.sign_in("director-001", PASSWORD, "phone A")
        self.assertEqual((user.username, user.role), ("director-001", "director"))
        self.assertEqual(user.district_time_zone, "Asia/Shanghai")
        first = phone.sync_now()
        self.assertGreater(first.pulled, 0)
        self.assertFalse(first.diverged)
        children = [c for c in phone.children() if c.status == "active"]
        self.assertTrue(children, "the demo village has active children")
        child = children[0]
        self.assertEqual(child.village_id, user.org_unit_id)

        # The app restarts with no network: still signed in (the session is
        # in the store); the visit is stored with its outbox entry.
        del phone
        offline = ffi.SeedlingClient(path_a, f"http://127.0.0.1:{free_port()}")
        self.assertEqual(offline.current_user(), user)
        marker = f"grandmother's house {uuid.uuid4()}"
        today = ffi.district_day(int(time.time() * 1000), user.district_time_zone)
        visit_id = offline.record_visit(ffi.NewVisit(
            child_id=child.id, kind="home_visit",
            visited_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            location=marker, observations_json=json.dumps({"study": "doing well"}),
            submit=True))
        self.assertEqual(offline.pending_count(), 1)
        with self.assertRaises(ffi.SeedlingError.Offline):
            offline.sync_now()
        self.assertEqual(offline.pending_count(), 1, "a failed sync keeps the outbox")
        with self.assertRaises(ffi.SeedlingError.Refused) as refused:
            offline.edit_visit(visit_id, [ffi.VisitChange.SET(
                field="review_comment", value_json='"approved by me"')])
        self.assertEqual(refused.exception.reason, "role_not_allowed")
        del offline

        # The network is back.
        phone = ffi.SeedlingClient(path_a, url)
        pushed = phone.sync_now()
        self.assertEqual((pushed.applied, pushed.rejected, pushed.pending), (1, 0, 0))
        shown = phone.visit(visit_id)
        self.assertEqual((shown.location, shown.review_status, shown.pending),
                         (marker, "submitted", False))
        self.assertEqual(shown.server_version, 1)
        self.assertEqual(json.loads(shown.fields_json)["observations"], {"study": "doing well"})

        # On the server, through its own pull as another device.
        on_server = self.server.pulled_records(self.server.login("director-001"))[visit_id]
        self.assertEqual((field(on_server, "location"), field(on_server, "child_id")),
                         (marker, child.id))

        # The child just visited is no longer due: its next visit is one
        # interval from today.
        due = {c.child_id: c for c in phone.children_due(today)}
        self.assertEqual(set(due), {c.id for c in phone.children()})
        visited = due[child.id]
        self.assertEqual(visited.last_visit_on, today)
        self.assertTrue(visited.due.is_UPCOMING(), visited.due)
        self.assertEqual(visited.due.days_left, visited.interval_days)
        self.assertNotIn(child.id, {c.child_id for c in phone.day_tasks(today).due})

        # A second phone of the same director receives it; an edit on the
        # first reaches the second.
        second = ffi.SeedlingClient(self.db("b"), url)
        second.sign_in("director-001", PASSWORD, "phone B")
        second.sync_now()
        self.assertEqual(second.visit(visit_id).location, marker)
        phone.edit_visit(visit_id, [
            ffi.VisitChange.SET(field="location", value_json='"school"'),
            ffi.VisitChange.ADD_ITEM(field="needs",
                                     item_json='{"id": "n1", "area": "study"}'),
        ])
        self.assertTrue(phone.visit(visit_id).pending)
        self.assertEqual(phone.sync_now().applied, 1)
        second.sync_now()
        seen = second.visit(visit_id)
        self.assertEqual(seen.location, "school")
        self.assertEqual(json.loads(seen.fields_json)["needs"], [{"id": "n1", "area": "study"}])
        self.assertEqual(seen.server_version, 2)

        # The supervisor returns it: a task on the phone, with the comment.
        version = phone.visit(visit_id).server_version
        self.return_visit(visit_id, version, "请补充孩子的学习情况")
        phone.sync_now()
        tasks = phone.day_tasks(today)
        self.assertEqual(tasks.today, today)
        self.assertEqual([(t.visit_id, t.comment) for t in tasks.returned],
                         [(visit_id, "请补充孩子的学习情况")])
        phone.edit_visit(visit_id, [
            ffi.VisitChange.SET(field="review_status", value_json='"submitted"')])
        self.assertEqual(phone.day_tasks(today).returned, [])
        phone.sync_now()

        # Signing out with unsent work is refused; once sent, it erases
        # every record of minors from the file, not only from the tables.
        phone.edit_visit(visit_id, [ffi.VisitChange.SET(field="location", value_json='"home"')])
        with self.assertRaises(ffi.SeedlingError.PendingWork) as pending:
            phone.sign_out(False)
        self.assertEqual(pending.exception.pending, 1)
        phone.sync_now()
        device = phone.device_id()
        names = [c.name for c in phone.children()]
        self.assertTrue(all(names))
        phone.sign_out(False)
        self.assertIsNone(phone.current_user())
        self.assertEqual((phone.children(), phone.visits(), phone.pending_count()), ([], [], 0))
        self.assertEqual(phone.device_id(), device, "the device id stays")
        with self.assertRaises(ffi.SeedlingError.NotSignedIn):
            phone.sync_now()
        raw = b"".join(Path(p).read_bytes() for p in (path_a, path_a + "-wal")
                       if Path(p).exists())
        for secret in [marker, "school", "请补充孩子的学习情况", *names]:
            self.assertNotIn(secret.encode(), raw, f"{secret!r} is still in the file")

    def test_another_user_cannot_sign_in_over_unsent_visits(self):
        url = self.server.url
        phone = ffi.SeedlingClient(self.db("shared"), url)
        phone.sign_in("director-002", PASSWORD, "shared phone")
        phone.sync_now()
        child = phone.children()[0]
        phone.record_visit(ffi.NewVisit(
            child_id=child.id, kind="phone_follow_up",
            visited_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            location=None, observations_json=None, submit=False))
        first_device = phone.device_id()
        with self.assertRaises(ffi.SeedlingError.PendingForOtherUser) as refused:
            phone.sign_in("director-003", PASSWORD, "shared phone")
        self.assertEqual(refused.exception.pending, 1)
        self.assertEqual(phone.current_user().username, "director-002")
        self.assertEqual(phone.pending_count(), 1, "their visit is kept")
        self.assertEqual(phone.sync_now().applied, 1)
        # Once sent, the next user starts from a wiped store under a new
        # device id (the old one stays registered to director-002).
        user = phone.sign_in("director-003", PASSWORD, "shared phone")
        self.assertEqual(user.username, "director-003")
        self.assertNotEqual(phone.device_id(), first_device)
        self.assertEqual(phone.visits(), [])
        phone.sync_now()
        self.assertTrue(all(c.village_id == user.org_unit_id for c in phone.children()))

    def return_visit(self, visit_id, version, comment):
        """Returns the visit as the supervisor of its town."""
        for n in range(1, 13):
            token = self.server.login(f"supervisor-{n:02}")
            status, _ = self.server.call("GET", f"/api/v1/visits/{visit_id}", token)
            if status == 200:
                status, body = self.server.call(
                    "POST", f"/api/v1/visits/{visit_id}/review", token,
                    {"decision": "return", "comment": comment, "version": version})
                self.assertEqual(status, 200, body)
                return
        self.fail("no supervisor sees the visit")


if __name__ == "__main__":
    unittest.main()
