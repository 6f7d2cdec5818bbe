<?php
// One "request" of a PHP app whose sessions live in sessionfed through phpredis'
// session handler (session.save_handler=redis, set by the caller with -d).
// Usage: php php_session.php ACTION [SESSION_ID]
//   create      start a new session, store data, print its id
//   read        open SESSION_ID, print its data
//   update      open SESSION_ID, print its data, set seen=true
//   regenerate  open SESSION_ID, session_regenerate_id(true), add data, print the new id
//   logout      open SESSION_ID, session_destroy()
//   visit       open SESSION_ID, hold it (and its lock) for 300 ms, append NAME to visits
//               (usage: php php_session.php visit SESSION_ID NAME)
// Prints one JSON line: what the request saw, and every PHP warning/notice it raised.

$report = ['action' => $argv[1] ?? '', 'warnings' => []];
set_error_handler(function ($level, $message) use (&$report) {
    $report['warnings'][] = $message;
    return true;
});

ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');

$action = $argv[1] ?? '';
if (isset($argv[2])) {
    session_id($argv[2]);
}

$report['start'] = session_start();
$report['id'] = session_id();
switch ($action) {
    case 'create':
        $_SESSION['user'] = 'ann';
        $_SESSION['cart'] = [1, 2];
        break;
    case 'read':
        $report['data'] = $_SESSION;
        break;
    case 'update':
        $report['data'] = $_SESSION;
        $_SESSION['seen'] = true;
        break;
    case 'regenerate':
        $report['data'] = $_SESSION;
        $report['regenerate'] = session_regenerate_id(true);
        $report['new_id'] = session_id();
        $_SESSION['role'] = 'admin';
        break;
    case 'visit':
        // Long enough that a concurrent request of the same session finds the lock taken.
        usleep(300000);
        $_SESSION['visits'][] = $argv[3] ?? '?';
        $report['data'] = $_SESSION;
        break;
    case 'logout':
        $report['data'] = $_SESSION;
        $report['destroy'] = session_destroy();
        break;
}
if ($action !== 'logout') {
    $report['write_close'] = session_write_close();
}
echo json_encode($report), "\n";
