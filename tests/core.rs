//! Runtime-core behaviour through the real binary, with Lua services written directly
//! against `skynet.core` (no framework): ordering, timers, overload and endless-loop
//! warnings, error isolation, kill answering pending requests, config errors, daemon.

mod common;

use common::{repo_root, Skynet, TempDir};
use std::process::Command;
use std::time::Duration;

/// Config booting straight into `boot` (a service in the temp dir) through snlua.
fn core_config(dir: &TempDir, boot: &str, extra: &str) -> std::path::PathBuf {
    let root = repo_root();
    let text = format!(
        "thread = 2\nharbor = 0\nbootstrap = \"snlua {boot}\"\nluaservice = \"{dir}/?.lua\"\nlualoader = \"{root}/skynet/lualib/loader.lua\"\nlua_path = \"{dir}/?.lua;{root}/skynet/lualib/?.lua\"\n{extra}\n",
        dir = dir.path().display(),
        root = root.display()
    );
    dir.write("config", &text)
}

/// Helpers every core-level test service uses.
const PRELUDE: &str = r#"
local c = require "skynet.core"
local function log(...) c.error(...) end
local function self() return c.addresscommand "REG" end
local function launch(...) return c.addresscommand("LAUNCH", table.concat({"snlua", ...}, " ")) end
"#;

fn start(name: &str, services: &[(&str, &str)], extra: &str) -> (TempDir, Skynet) {
    let dir = TempDir::new(name);
    for (file, body) in services {
        dir.write(&format!("{file}.lua"), &format!("{PRELUDE}\n{body}"));
    }
    let conf = core_config(&dir, services[0].0, extra);
    let sk = Skynet::start(&conf, dir.path());
    (dir, sk)
}

#[test]
fn messages_from_one_sender_arrive_in_order() {
    let (_d, mut sk) = start(
        "order",
        &[
            (
                "sender",
                r#"
local rx = launch "receiver"
for i = 1, 5000 do c.send(rx, 0, 0, tostring(i)) end
c.send(rx, 0, 0, "end")
"#,
            ),
            (
                "receiver",
                r#"
local expect = 1
c.callback(function(ty, msg, sz, session, source)
    local s = c.tostring(msg, sz)
    if s == "end" then
        log("ORDER", expect == 5001 and "OK" or "BAD", expect)
    elseif tonumber(s) ~= expect then
        log("ORDER BAD got", s, "expected", expect)
        expect = -1000000
    else
        expect = expect + 1
    end
end)
"#,
            ),
        ],
        "",
    );
    let line = sk.wait_for("ORDER", Duration::from_secs(20));
    assert!(line.contains("ORDER OK 5001"), "{line}\n{}", sk.log());
}

#[test]
fn error_joins_many_arguments_without_overflowing_the_stack() {
    // 2n - 1 values go on the stack above the n arguments; a C function is only
    // promised 20 slots, so this overflowed (an api_check abort in debug builds).
    let (_d, mut sk) = start(
        "errargs",
        &[(
            "main",
            r#"
local t = {}
for i = 1, 60 do t[i] = i end
c.error("MANY", table.unpack(t))
c.error("NILS", nil, false, 1.5, "x")
c.error("DONE")
"#,
        )],
        "",
    );
    sk.wait_for("DONE", Duration::from_secs(20));
    let many = (1..=60)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(sk.log().contains(&format!("MANY {many}")), "{}", sk.log());
    assert!(sk.log().contains("NILS nil false 1.5 x"), "{}", sk.log());
}

#[test]
fn timeouts_fire_in_time_order_as_responses() {
    let (_d, mut sk) = start(
        "timer",
        &[(
            "timers",
            r#"
local names = {}
names[tonumber(c.command("TIMEOUT", "10"))] = "t10"
names[tonumber(c.command("TIMEOUT", "0"))] = "t0"
names[tonumber(c.command("TIMEOUT", "5"))] = "t5"
local start = c.now()
local got = {}
c.callback(function(ty, msg, sz, session, source)
    assert(ty == 1 and source == 0, "timer messages are PTYPE_RESPONSE from 0")
    got[#got + 1] = names[session]
    if #got == 3 then
        log("TIMERS", table.concat(got, " "), "elapsed", c.now() - start)
    end
end)
"#,
        )],
        "",
    );
    let line = sk.wait_for("TIMERS", Duration::from_secs(10));
    assert!(line.contains("TIMERS t0 t5 t10"), "{line}");
    let elapsed: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((9..=100).contains(&elapsed), "10 ticks took {elapsed}");
}

#[test]
fn overload_warning_names_the_queue_length() {
    let (_d, mut sk) = start(
        "overload",
        &[
            (
                "flooder",
                r#"
local slow = launch "slow"
for i = 1, 6000 do c.send(slow, 0, 0, "x") end
"#,
            ),
            (
                "slow",
                r#"
local n = 0
c.callback(function()
    n = n + 1
    local t = os.clock() + 0.00002
    while os.clock() < t do end
    if n == 6000 then log("DRAINED") end
end)
"#,
            ),
        ],
        "",
    );
    let line = sk.wait_for(
        "May overload, message queue length =",
        Duration::from_secs(20),
    );
    assert!(line.contains("error: May overload"), "{line}");
    let n: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 1024, "{line}");
    sk.wait_for("DRAINED", Duration::from_secs(30));
}

#[test]
fn error_in_a_handler_is_logged_and_isolated() {
    let (_d, mut sk) = start(
        "isolate",
        &[
            (
                "driver",
                r#"
local bad = launch "faulty"
c.send(bad, 0, 0, "boom")
c.send(bad, 0, 0, "again")
"#,
            ),
            (
                "faulty",
                r#"
c.callback(function(ty, msg, sz)
    local s = c.tostring(msg, sz)
    if s == "boom" then error("deliberate failure") end
    log("STILL ALIVE", s)
end)
"#,
            ),
        ],
        "",
    );
    let err = sk.wait_for("deliberate failure", Duration::from_secs(10));
    assert!(err.contains("lua call ["), "{err}");
    assert!(err.contains("error : \x1b[31m"), "{err}");
    sk.wait_for("STILL ALIVE again", Duration::from_secs(10));
}

#[test]
fn endless_loop_is_reported_and_signal_breaks_it() {
    let (_d, mut sk) = start(
        "endless",
        &[
            (
                "watcher",
                r#"
local loop = launch "spinner"
c.send(loop, 0, 0, "spin")
-- After the monitor (5 s period, two checks) has noticed, break the loop with SIGNAL 0.
c.command("TIMEOUT", "1150")
c.callback(function(ty)
    if ty == 1 then
        c.command("SIGNAL", string.format(":%x 0", loop))
        c.command("TIMEOUT", "50")
        c.callback(function() c.send(loop, 0, 0, "ping") end)
    end
end)
"#,
            ),
            (
                "spinner",
                r#"
c.callback(function(ty, msg, sz)
    local s = c.tostring(msg, sz)
    if s == "spin" then while true do end end
    log("SPINNER ANSWERS", s)
end)
"#,
            ),
        ],
        "",
    );
    let line = sk.wait_for("maybe in an endless loop", Duration::from_secs(12));
    assert!(line.contains("error: A message from [ :"), "{line}");
    assert!(line.contains("to [ :0000000"), "{line}");
    sk.wait_for("recv a signal 0", Duration::from_secs(10));
    sk.wait_for("signal 0", Duration::from_secs(5));
    sk.wait_for("SPINNER ANSWERS ping", Duration::from_secs(10));
}

#[test]
fn killing_a_service_answers_requests_it_was_handling() {
    // Project decision: a request the killed service had received but not answered
    // gets a PTYPE_ERROR reply, so the caller is not left hanging.
    let (_d, mut sk) = start(
        "killpending",
        &[
            (
                "caller",
                r#"
local holder = launch "holder"
local session = c.send(holder, 10, nil, "hold this")
-- Give the holder time to receive the request, then kill it.
c.command("TIMEOUT", "20")
c.callback(function(ty, msg, sz, s, source)
    if ty == 1 and source == 0 then
        c.command("KILL", string.format(":%x", holder))
    elseif ty == 7 and s == session then
        log("CALLER GOT ERROR", source == holder)
    end
end)
"#,
            ),
            ("holder", "c.callback(function() end) -- never replies\n"),
        ],
        "",
    );
    let line = sk.wait_for("CALLER GOT ERROR", Duration::from_secs(10));
    assert!(line.ends_with("true"), "{line}");
    assert!(sk.log().contains("KILL :"), "{}", sk.log());
}

#[test]
fn unknown_native_module_fails_launch() {
    let (_d, mut sk) = start(
        "badlaunch",
        &[(
            "launcher_test",
            r#"
local r = c.command("LAUNCH", "nosuchmodule arg")
log("LAUNCH RESULT", tostring(r))
log("ENV", c.command("GETENV", "thread"), c.command("GETENV", "harbor"))
"#,
        )],
        "",
    );
    sk.wait_for("LAUNCH RESULT nil", Duration::from_secs(10));
    assert!(
        sk.log().contains("error: launch nosuchmodule FAILED"),
        "{}",
        sk.log()
    );
    sk.wait_for("ENV 2 0", Duration::from_secs(5));
}

fn run_to_exit(args: &[&str], cwd: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skynet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_stop_startup_naming_the_problem() {
    let d = TempDir::new("badconf");
    let (code, err) = run_to_exit(&[], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("Need a config file"), "{err}");

    let (code, err) = run_to_exit(&["missing.conf"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("missing.conf"), "{err}");

    d.write("syntax", "thread = 2\nharbor = = 0\n");
    let (code, err) = run_to_exit(&["syntax"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("syntax:2:"), "{err}");

    d.write("threads", "thread = 0\n");
    let (code, err) = run_to_exit(&["threads"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("Invalid thread 0"), "{err}");

    d.write("table", "thread = 2\nlogger = {}\n");
    let (code, err) = run_to_exit(&["table"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("Invalid config table key = logger"), "{err}");

    d.write(
        "badlog",
        "thread = 2\nlogger = \"/nonexistent/dir/skynet.log\"\n",
    );
    let (code, err) = run_to_exit(&["badlog"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("Can't launch logger service"), "{err}");
    assert!(err.contains("/nonexistent/dir/skynet.log"), "{err}");

    d.write("spin", "thread = 2\nsocket_spin = \"soon\"\n");
    let (code, err) = run_to_exit(&["spin"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("socket_spin"), "{err}");

    d.write("envvar", "thread = $SKYNET_TEST_UNSET_VAR\n");
    let (code, err) = run_to_exit(&["envvar"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("SKYNET_TEST_UNSET_VAR"), "{err}");
}

fn pid_alive(pid: i32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn daemon_writes_pid_refuses_second_start_and_sigterm_removes_pidfile() {
    let dir = TempDir::new("daemon");
    dir.write(
        "idle.lua",
        &format!("{PRELUDE}\nlog('DAEMON UP')\nc.callback(function() end)\n"),
    );
    let pidfile = dir.path().join("skynet.pid");
    let logfile = dir.path().join("skynet.log");
    let conf = core_config(
        &dir,
        "idle",
        &format!(
            "daemon = \"{}\"\nlogger = \"{}\"",
            pidfile.display(),
            logfile.display()
        ),
    );
    let conf_s = conf.display().to_string();
    let (code, _) = run_to_exit(&[&conf_s], dir.path());
    assert_eq!(code, 0, "the launching process returns at once");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&logfile)
            .map(|l| l.contains("DAEMON UP"))
            .unwrap_or(false)
    }));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));

    let (code, err) = run_to_exit(&[&conf_s], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Skynet is already running, pid = {pid}.")),
        "{err}"
    );

    Command::new("kill").arg(pid.to_string()).status().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "daemon did not stop on SIGTERM"
    );
    assert!(!pidfile.exists(), "pid file must be removed on SIGTERM");
    let log = std::fs::read_to_string(&logfile).unwrap();
    // File mode lines carry a timestamp before the address.
    let line = log.lines().find(|l| l.contains("DAEMON UP")).unwrap();
    assert!(
        line.contains("] DAEMON UP") && line.as_bytes()[2] == b'/',
        "{line}"
    );
}

#[test]
fn sighup_reopens_the_log_file() {
    let dir = TempDir::new("sighup");
    dir.write(
        "rotator.lua",
        &format!(
            "{PRELUDE}\nlog('FIRST')\nc.command('TIMEOUT', '5')\nc.callback(function(ty) log('TICK') c.command('TIMEOUT', '5') end)\n"
        ),
    );
    let logfile = dir.path().join("run.log");
    let conf = core_config(
        &dir,
        "rotator",
        &format!("logger = \"{}\"", logfile.display()),
    );
    let mut sk = Skynet::start(&conf, dir.path());
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&logfile)
            .map(|l| l.contains("FIRST"))
            .unwrap_or(false)
    }));
    let rotated = dir.path().join("run.log.1");
    std::fs::rename(&logfile, &rotated).unwrap();
    Command::new("kill")
        .args(["-HUP", &sk.pid().to_string()])
        .status()
        .unwrap();
    // The service keeps logging; after SIGHUP its lines land in a fresh run.log.
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&logfile)
            .map(|l| l.contains("TICK"))
            .unwrap_or(false)),
        "SIGHUP must reopen (recreate) the log file"
    );
    sk.stop();
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("FIRST"));
}

#[test]
fn text_commands_behave_as_upstream() {
    let dir = TempDir::new("commands");
    let logdir = dir.path().join("logs");
    std::fs::create_dir_all(&logdir).unwrap();
    let body = r#"
local me = self()
local function check(name, got, want)
    log(got == want and "CMD OK" or "CMD BAD", name, tostring(got), tostring(want))
end
check("REG", c.command("REG"), string.format(":%x", me))
check("REG name", c.command("REG", ".alpha"), "alpha")
check("REG taken", c.command("REG", ".alpha"), nil)
check("QUERY", c.command("QUERY", ".alpha"), string.format(":%x", me))
check("QUERY missing", c.command("QUERY", ".nope"), nil)
check("addresscommand QUERY", c.addresscommand("QUERY", ".alpha"), me)
check("NAME", c.command("NAME", string.format(".beta :%08x", me)), "beta")
check("QUERY beta", c.addresscommand("QUERY", ".beta"), me)
local launched = c.command("LAUNCH", "snlua child")
check("LAUNCH format", launched:match("^:%x%x%x%x%x%x%x%x$") ~= nil and launched:upper() == launched, true)
local child = tonumber(launched:sub(2), 16)
check("GETENV default", c.command("GETENV", "profile"), "true")
c.command("SETENV", "newkey hello world")
check("SETENV", c.command("GETENV", "newkey"), "hello world")
c.command("SETENV", "newkey other")
check("SETENV keeps", c.command("GETENV", "newkey"), "hello world")
check("STARTTIME", math.abs(tonumber(c.command("STARTTIME")) - os.time()) < 5, true)
check("STAT mqlen", c.intcommand("STAT", "mqlen"), 0)
check("STAT message", c.intcommand("STAT", "message") >= 1, true)
check("STAT cpu float", math.type(c.intcommand("STAT", "cpu")), "float")
check("STAT other", c.command("STAT", "nothing"), "")
check("STAT endless", c.command("STAT", "endless"), "0")
check("MONITOR unset", c.command("MONITOR"), nil)
c.command("MONITOR", string.format(":%x", me))
check("MONITOR set", c.command("MONITOR"), string.format(":%x", me))
check("TIMEOUT session", math.type(c.intcommand("TIMEOUT", 1000)), "integer")
check("unknown", c.command("NOSUCH"), nil)
check("intcommand hex", c.intcommand("GETENV", "hexval"), 31)
c.command("LOGON", string.format(":%08x", me))
c.callback(function(ty, msg, sz, session, source)
    if ty == 3 then
        -- exit notice from the monitored child
        log("MONITOR NOTICE from", source == child)
        c.command("LOGOFF", string.format(":%08x", me))
        log("ABORTING")
        c.command("ABORT")
    end
end)
c.send(child, 0, 0, "exit please")
"#;
    dir.write("cmds.lua", &format!("{PRELUDE}\n{body}"));
    dir.write(
        "child.lua",
        &format!(
            "{PRELUDE}\nc.command('REG', '.child')\nc.callback(function() c.command('EXIT') end)\n"
        ),
    );
    let conf = core_config(
        &dir,
        "cmds",
        &format!("hexval = \"0x1f\"\nlogpath = \"{}\"", logdir.display()),
    );
    let mut sk = Skynet::start(&conf, dir.path());
    assert_eq!(
        sk.wait_exit(Duration::from_secs(10)),
        Some(0),
        "ABORT ends the process:\n{}",
        sk.log()
    );
    let log = sk.log();
    assert!(!log.contains("CMD BAD"), "{log}");
    assert_eq!(log.matches("CMD OK").count(), 23, "{log}");
    assert!(log.contains("MONITOR NOTICE from true"), "{log}");
    assert!(log.contains("KILL self"), "{log}");
    let msglog = std::fs::read_to_string(logdir.join("00000002.log")).unwrap();
    assert!(msglog.starts_with("open time: "), "{msglog}");
    assert!(msglog.contains("close time: "), "{msglog}");
    // The monitor notice was logged as a record: source, type 3, session 0.
    assert!(
        msglog.lines().any(|l| l.starts_with(":00000003 3 0 ")),
        "{msglog}"
    );
}

#[test]
fn embedded_framework_serves_missing_loader_services_and_modules() {
    // A config whose paths lead to none of our Lua files: loader, bootstrap, launcher,
    // skynet.lua and skynet.manager must all come from the copy inside the binary.
    let dir = TempDir::new("embedded");
    dir.write(
        "hello.lua",
        r#"
local skynet = require "skynet"
require "skynet.manager"
skynet.start(function()
    local info = debug.getinfo(skynet.start, "S")
    skynet.error("EMBEDDED", info.source)
    skynet.abort()
end)
"#,
    );
    let text = format!(
        "thread = 2\nharbor = 0\nstart = \"hello\"\nbootstrap = \"snlua bootstrap\"\nluaservice = \"{d}/?.lua\"\nlualoader = \"{d}/no/such/loader.lua\"\nlua_path = \"{d}/?.lua\"\ncpath = \"/opt/upstream/cservice/?.so\"\n",
        d = dir.path().display()
    );
    let conf = dir.write("config", &text);
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for("EMBEDDED", Duration::from_secs(10));
    assert!(line.contains("@[embedded]/lualib/skynet.lua"), "{line}");
    assert_eq!(
        sk.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        sk.log()
    );
    assert!(sk.log().contains("LAUNCH snlua launcher"), "{}", sk.log());
}

#[test]
fn timing_coroutine_functions_and_profile() {
    let (_d, mut sk) = start(
        "profile",
        &[(
            "prof",
            r#"
local profile = require "skynet.profile"
local gen = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
local first, second = gen(1), gen(10)
local bad = coroutine.wrap(function() error("inner failure") end)
local ok, err = pcall(bad)
local co = coroutine.create(function() profile.start() local x = 0 for i = 1, 2e6 do x = x + i end coroutine.yield() return profile.stop() end)
local r1 = table.pack(coroutine.resume(co))
local ok2, spent = coroutine.resume(co)
local dup_ok, dup_err = pcall(function() profile.start() profile.start() end)
log("WRAP", first, second, ok, err:match("inner failure") ~= nil)
log("PROFILE", r1[1], ok2, math.type(spent), spent > 0 and spent < 5, dup_ok, dup_err:match("more than once") ~= nil)
"#,
        )],
        "",
    );
    let line = sk.wait_for("WRAP", Duration::from_secs(10));
    assert!(line.ends_with("WRAP 2 20 false true"), "{line}");
    let line = sk.wait_for("PROFILE", Duration::from_secs(10));
    assert!(
        line.ends_with("PROFILE true true float true false true"),
        "{line}"
    );
}

#[test]
fn custom_lua_logger_receives_every_line_and_sighup() {
    let dir = TempDir::new("customlog");
    let out = dir.path().join("custom.out");
    dir.write(
        "mylogger.lua",
        &format!(
            r#"{PRELUDE}
local f = assert(io.open("{out}", "w"))
c.callback(function(ty, msg, sz, session, source)
    if ty == 0 then
        f:write(string.format("<%08x> %s\n", source, c.tostring(msg, sz)))
    elseif ty == 4 then
        f:write("REOPEN\n")
    end
    f:flush()
end)
"#,
            out = out.display()
        ),
    );
    dir.write(
        "talker.lua",
        &format!("{PRELUDE}\nlog('hello custom logger')\n"),
    );
    let conf = core_config(
        &dir,
        "talker",
        "logservice = \"snlua\"\nlogger = \"mylogger\"",
    );
    let mut sk = Skynet::start(&conf, dir.path());
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || read()
            .contains("hello custom logger")),
        "{}",
        read()
    );
    Command::new("kill")
        .args(["-HUP", &sk.pid().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || read().contains("REOPEN")),
        "{}",
        read()
    );
    assert!(
        read().contains("<00000002> LAUNCH snlua talker"),
        "{}",
        read()
    );
    sk.stop();
}

#[test]
fn memory_warning_doubles_and_signal_1_reports_memory() {
    let (_d, mut sk) = start(
        "memwarn",
        &[(
            "hog",
            r#"
local keep = {}
for i = 1, 40 do keep[i] = string.rep(string.char(64 + i % 26), 1024 * 1024) end
log("ALLOCATED", #keep)
c.command("SIGNAL", string.format(":%x 1", self()))
c.callback(function() end)
"#,
        )],
        "",
    );
    let line = sk.wait_for("Memory warning", Duration::from_secs(10));
    let mb: f64 = line.rsplit(' ').nth(1).unwrap().parse().unwrap();
    assert!((32.0..40.0).contains(&mb), "{line}");
    sk.wait_for("ALLOCATED 40", Duration::from_secs(10));
    sk.wait_for("recv a signal 1", Duration::from_secs(5));
    let line = sk.wait_for("Current Memory", Duration::from_secs(5));
    let kb: f64 = line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('K')
        .parse()
        .unwrap();
    assert!(kb > 40.0 * 1024.0, "{line}");
    // One report per doubling: nothing between 32 MB and 64 MB after the first.
    assert_eq!(
        sk.log().matches("Memory warning").count(),
        1,
        "{}",
        sk.log()
    );
}

#[test]
fn sigterm_exits_even_when_a_service_never_yields() {
    let (_d, mut sk) = start(
        "stuckterm",
        &[("looper", "log('LOOPING')\nc.command('TIMEOUT', '1')\nc.callback(function() while true do end end)\n")],
        "",
    );
    sk.wait_for("LOOPING", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .arg(sk.pid().to_string())
        .status()
        .unwrap();
    let code = sk.wait_exit(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(1),
        "a stuck service must not keep the process alive:\n{}",
        sk.log()
    );
}

#[test]
fn snapshot_module_maps_live_objects_to_their_first_reference() {
    // Upstream's debug protocol (SNAPSHOT) requires the native `snapshot` module and
    // parses its descriptions: "<kind>\n0x<parent> : <key>\n".
    let (_d, mut sk) = start(
        "snapshot",
        &[(
            "snap",
            r#"
local snapshot = require "snapshot"
leak_holder = { inner = { deep = true } }
local function marker_fn() return leak_holder end
held_fn = marker_fn
local co = coroutine.create(function(x) coroutine.yield(x) end)
coroutine.resume(co, { on_stack = 1 })
held_co = co
local snap = snapshot()
local function find(obj)
    local want = string.format("%p", obj)
    for k, v in pairs(snap) do
        if string.format("%p", k) == want then return v end
    end
end
local function addr(obj) return string.format("%p", obj):gsub("^0x", "") end
local holder, inner = find(leak_holder), find(leak_holder.inner)
log("SNAP holder", holder and holder:match("^table\n0x%x+ : leak_holder\n$") ~= nil)
log("SNAP inner", inner and inner:find("^table\n0x" .. addr(leak_holder) .. " : inner\n") ~= nil)
local fn = find(marker_fn)
log("SNAP func", fn and fn:match("^func: .*snap.lua:%d+\n") ~= nil)
local th = find(co)
log("SNAP thread", th and th:match("^thread:") ~= nil)
local count = 0
for k, v in pairs(snap) do
    assert(type(k) == "userdata" and type(v) == "string")
    count = count + 1
end
log("SNAP count", count > 50)
"#,
        )],
        "",
    );
    for what in ["holder", "inner", "func", "thread", "count"] {
        let line = sk.wait_for(&format!("SNAP {what}"), Duration::from_secs(10));
        assert!(line.ends_with("true"), "{line}\n{}", sk.log());
    }
}

#[test]
fn services_run_with_generational_gc() {
    let (_d, mut sk) = start(
        "gcmode",
        &[(
            "gc",
            "c.command('TIMEOUT', '0')\nc.callback(function() log('GC MODE', collectgarbage('generational'), collectgarbage('isrunning')) end)\n",
        )],
        "",
    );
    // collectgarbage(mode) returns the previous mode; the GC, stopped while the
    // loader runs, is running once the service handles messages.
    let line = sk.wait_for("GC MODE", Duration::from_secs(10));
    assert!(line.ends_with("GC MODE generational true"), "{line}");
}
