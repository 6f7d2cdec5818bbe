import RESP
import SessionModel
import Testing
@testable import Keyspace

/// Sorted-set commands answer as redis-server 7.0 does (the replies below were taken from
/// redis-server 7.0.15; Tests/Interop/test_sorted_sets.py diffs them against a live one).
@Suite struct SortedSetCommandTests {
    func members(_ names: String...) -> RESPValue { .array(names.map(bulk)) }

    func scored(_ pairs: (String, Double)...) -> RESPValue {
        .pairArray(pairs.map { RESPPair(bulk($0.0), .double($0.1)) })
    }

    @Test func zadd_countsAdded_chCountsChanged_zscoreAndZcardRead() {
        var h = Harness()
        #expect(h.run("ZADD", "z", "1", "a", "2", "b") == .integer(2))
        #expect(h.run("ZADD", "z", "1", "a", "5", "b", "3", "c") == .integer(1))
        #expect(h.run("ZADD", "z", "CH", "1", "a", "6", "b", "4", "d") == .integer(2))
        #expect(h.run("ZCARD", "z") == .integer(4))
        #expect(h.run("ZSCORE", "z", "b") == .double(6))
        #expect(h.run("ZSCORE", "z", "nope") == .null)
        #expect(h.run("ZSCORE", "missing", "a") == .null)
        #expect(h.run("ZCARD", "missing") == .integer(0))
        #expect(h.run("TYPE", "z") == .simpleString("zset"))
        #expect(h.events.map(\.name) == ["zadd", "zadd", "zadd"])
        #expect(h.events.allSatisfy { $0.eventClass == .zset })
    }

    @Test func zadd_sameScore_writesNothing() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a")
        let deltas = h.deltas.count
        #expect(h.run("ZADD", "z", "1", "a") == .integer(0))
        #expect(h.deltas.count == deltas)
        #expect(h.events.count == 1)
    }

    @Test func zadd_nxXxGtLt_perMember() {
        var h = Harness()
        #expect(h.run("ZADD", "z", "XX", "1", "a") == .integer(0))
        #expect(h.run("EXISTS", "z") == .integer(0), "XX on a missing key creates nothing")
        h.run("ZADD", "z", "5", "a")
        #expect(h.run("ZADD", "z", "NX", "9", "a", "1", "b") == .integer(1))
        #expect(h.run("ZSCORE", "z", "a") == .double(5))
        #expect(h.run("ZADD", "z", "XX", "CH", "7", "a", "1", "c") == .integer(1))
        #expect(h.run("ZADD", "z", "GT", "CH", "3", "a", "8", "b") == .integer(1))
        #expect(h.run("ZADD", "z", "LT", "CH", "9", "a", "2", "b") == .integer(1))
        #expect(h.run("ZRANGE", "z", "0", "-1", "WITHSCORES") == scored(("b", 2), ("a", 7)))
        #expect(h.run("ZADD", "z", "GT", "1", "new") == .integer(1), "GT and LT only hold back updates")
    }

    @Test func zadd_incr_returnsTheScore_orNullWhenHeldBack() {
        var h = Harness()
        #expect(h.run("ZADD", "z", "INCR", "1.5", "a") == .double(1.5))
        #expect(h.run("ZADD", "z", "INCR", "1", "a") == .double(2.5))
        #expect(h.run("ZINCRBY", "z", "-0.5", "a") == .double(2))
        #expect(h.run("ZADD", "z", "NX", "INCR", "1", "a") == .null)
        #expect(h.run("ZADD", "z", "XX", "INCR", "1", "b") == .null)
        #expect(h.run("ZADD", "z", "GT", "INCR", "-1", "a") == .null)
        #expect(h.run("ZINCRBY", "z", "inf", "a") == .double(.infinity))
        #expect(h.run("ZINCRBY", "z", "-inf", "a") == .error("ERR resulting score is not a number (NaN)"))
        #expect(h.run("ZSCORE", "z", "a") == .double(.infinity))
        #expect(h.events.map(\.name) == ["zincr", "zincr", "zincr", "zincr"])
    }

    @Test func zadd_badArguments_redisErrors_nothingWritten() {
        var h = Harness()
        #expect(h.run("ZADD", "z", "1", "a", "2") == RedisError.syntax)
        #expect(h.run("ZADD", "z", "NX") == RedisError.syntax)
        #expect(h.run("ZADD", "z", "NX", "XX", "1", "a") == .error("ERR XX and NX options at the same time are not compatible"))
        #expect(h.run("ZADD", "z", "GT", "LT", "1", "a") == .error("ERR GT, LT, and/or NX options at the same time are not compatible"))
        #expect(h.run("ZADD", "z", "NX", "GT", "1", "a") == .error("ERR GT, LT, and/or NX options at the same time are not compatible"))
        #expect(h.run("ZADD", "z", "INCR", "1", "a", "2", "b") == .error("ERR INCR option supports a single increment-element pair"))
        for score in ["nan", "abc", "", " 1", "1e400"] {
            #expect(h.run("ZADD", "z", "1", "a", score, "b") == .error("ERR value is not a valid float"), "\(score)")
        }
        #expect(h.run("EXISTS", "z") == .integer(0))
        #expect(h.deltas.isEmpty)
        h.run("SET", "s", "x")
        #expect(h.run("ZADD", "s", "1", "a") == RedisError.wrongType)
        #expect(h.run("ZSCORE", "s", "a") == RedisError.wrongType)
        #expect(h.run("ZRANGE", "s", "0", "-1") == RedisError.wrongType)
        h.run("ZADD", "z", "1", "a")
        #expect(h.run("GET", "z") == RedisError.wrongType)
        #expect(h.run("SADD", "z", "a") == RedisError.wrongType)
    }

    @Test func zadd_infinitiesAndNegativeZero() {
        var h = Harness()
        #expect(h.run("ZADD", "z", "-inf", "lo", "+inf", "hi", "inf", "hi2", "-0", "zero") == .integer(4))
        #expect(h.run("ZRANGE", "z", "0", "-1", "WITHSCORES") == scored(("lo", -.infinity), ("zero", 0), ("hi", .infinity), ("hi2", .infinity)))
        guard case .double(let zero) = h.run("ZSCORE", "z", "zero") else { Issue.record("no score"); return }
        #expect(zero.sign == .plus, "-0 reads back as 0, as from Redis's small sets")
    }

    @Test func zrem_removesVisibleMembers_lastTakesTheKey() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a", "2", "b")
        #expect(h.run("ZREM", "z", "a", "a", "nope") == .integer(1))
        #expect(h.run("ZREM", "missing", "a") == .integer(0))
        #expect(h.run("ZREM", "z", "b") == .integer(1))
        #expect(h.run("EXISTS", "z") == .integer(0))
        #expect(h.events.map(\.name) == ["zadd", "zrem", "zrem", "del"])
    }

    @Test func zrange_byIndex_forwardAndReversed_withScores() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a", "2", "b", "3", "c", "3", "d")
        #expect(h.run("ZRANGE", "z", "0", "-1") == members("a", "b", "c", "d"))
        #expect(h.run("ZRANGE", "z", "1", "2", "WITHSCORES") == scored(("b", 2), ("c", 3)))
        #expect(h.run("ZRANGE", "z", "-2", "100") == members("c", "d"))
        #expect(h.run("ZRANGE", "z", "-100", "0") == members("a"))
        #expect(h.run("ZRANGE", "z", "3", "1") == members())
        #expect(h.run("ZRANGE", "z", "9", "10") == members())
        #expect(h.run("ZRANGE", "z", "0", "1", "REV") == members("d", "c"))
        #expect(h.run("ZREVRANGE", "z", "0", "1", "WITHSCORES") == scored(("d", 3), ("c", 3)))
        #expect(h.run("ZREVRANGE", "z", "-1", "-1") == members("a"))
        #expect(h.run("ZRANGE", "missing", "0", "-1", "WITHSCORES") == scored())
        #expect(h.run("ZRANGE", "z", "a", "1") == RedisError.notInteger)
        #expect(h.run("ZRANGE", "z", "0", "-1", "LIMIT", "0", "1") == .error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"))
        #expect(h.run("ZRANGE", "z", "0", "-1", "LIMIT", "3", "-1") == members("a", "b", "c", "d"), "a count of -1 is no LIMIT")
        #expect(h.run("ZRANGE", "z", "0", "-1", "BOGUS") == RedisError.syntax)
        #expect(h.run("ZRANGE", "z", "0", "-1", "REV", "REV") == RedisError.syntax)
        #expect(h.run("ZREVRANGE", "z", "0", "-1", "REV") == RedisError.syntax)
    }

    @Test func zrange_byScore_exclusiveBoundsInfinitiesLimit() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e")
        #expect(h.run("ZRANGE", "z", "2", "4", "BYSCORE") == members("b", "c", "d"))
        #expect(h.run("ZRANGE", "z", "(2", "(4", "BYSCORE") == members("c"))
        #expect(h.run("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2") == members("b", "c"))
        #expect(h.run("ZRANGE", "z", "+inf", "(3", "BYSCORE", "REV", "WITHSCORES") == scored(("e", 5), ("d", 4)))
        #expect(h.run("ZRANGEBYSCORE", "z", "(1", "3", "WITHSCORES") == scored(("b", 2), ("c", 3)))
        #expect(h.run("ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "3", "-5") == members("d", "e"))
        #expect(h.run("ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "-1", "2") == members(), "a negative offset walks off the end")
        #expect(h.run("ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "5", "2") == members())
        #expect(h.run("ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "0", "0") == members())
        #expect(h.run("ZRANGEBYSCORE", "z", "3", "3") == members("c"))
        #expect(h.run("ZRANGEBYSCORE", "z", "(3", "3") == members())
        #expect(h.run("ZRANGEBYSCORE", "z", "4", "2") == members())
        #expect(h.run("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "0", "2") == members("e", "d"))
        #expect(h.run("ZREVRANGEBYSCORE", "z", "4", "(1", "WITHSCORES", "LIMIT", "1", "1") == scored(("c", 3)))
        #expect(h.run("ZRANGEBYSCORE", "z", "x", "1") == .error("ERR min or max is not a float"))
        #expect(h.run("ZRANGEBYSCORE", "z", "1", "((2") == .error("ERR min or max is not a float"))
        #expect(h.run("ZRANGEBYSCORE", "z", "1", "2", "BYSCORE") == RedisError.syntax)
        #expect(h.run("ZRANGEBYSCORE", "z", "1", "2", "LIMIT", "0") == RedisError.syntax)
        #expect(h.run("ZRANGEBYSCORE", "z", "1", "2", "LIMIT", "x", "1") == RedisError.notInteger)
        #expect(h.run("ZRANGEBYSCORE", "missing", "x", "1") == .error("ERR min or max is not a float"), "ranges are read before the key")
    }

    @Test func zrange_byLex() {
        var h = Harness()
        h.run("ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d")
        #expect(h.run("ZRANGE", "z", "[b", "(d", "BYLEX") == members("b", "c"))
        #expect(h.run("ZRANGE", "z", "-", "+", "BYLEX", "LIMIT", "1", "2") == members("b", "c"))
        #expect(h.run("ZRANGE", "z", "+", "[b", "BYLEX", "REV") == members("d", "c", "b"))
        #expect(h.run("ZRANGEBYLEX", "z", "(a", "[c") == members("b", "c"))
        #expect(h.run("ZREVRANGEBYLEX", "z", "(d", "-") == members("c", "b", "a"))
        #expect(h.run("ZRANGE", "z", "a", "c", "BYLEX") == .error("ERR min or max not valid string range item"))
        #expect(h.run("ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES") == .error("ERR syntax error, WITHSCORES not supported in combination with BYLEX"))
        #expect(h.run("ZRANGE", "z", "[c", "[b", "BYLEX") == members())
    }

    @Test func zrangestore_replacesDestination_emptyDeletesIt() {
        var h = Harness()
        h.run("ZADD", "src", "1", "a", "2", "b", "3", "c")
        h.run("SET", "dst", "old", "EX", "100")
        #expect(h.run("ZRANGESTORE", "dst", "src", "1", "-1") == .integer(2))
        #expect(h.run("TYPE", "dst") == .simpleString("zset"))
        #expect(h.run("TTL", "dst") == .integer(-1))
        #expect(h.run("ZRANGE", "dst", "0", "-1", "WITHSCORES") == scored(("b", 2), ("c", 3)))
        #expect(h.run("ZRANGESTORE", "dst", "src", "(1", "+inf", "BYSCORE", "REV") == .integer(0), "reversed: the maximum first")
        #expect(h.run("ZRANGESTORE", "dst", "src", "+inf", "(1", "BYSCORE", "REV", "LIMIT", "0", "1") == .integer(1))
        #expect(h.run("ZRANGE", "dst", "0", "-1") == members("c"))
        #expect(h.run("ZRANGESTORE", "dst", "src", "0", "-1", "WITHSCORES") == RedisError.syntax)
        #expect(h.run("ZRANGESTORE", "dst", "src", "5", "9") == .integer(0))
        #expect(h.run("ZRANGESTORE", "dst", "src", "5", "9") == .integer(0))
        #expect(h.run("EXISTS", "dst") == .integer(0))
        #expect(h.run("ZRANGESTORE", "dst", "missing", "0", "-1") == .integer(0))
        #expect(h.run("ZRANGESTORE", "src", "src", "0", "0") == .integer(1))
        #expect(h.run("ZRANGE", "src", "0", "-1") == members("a"))
        // The second empty store and the one from a missing source find nothing to delete.
        #expect(h.events.map(\.name) == ["zadd", "set", "expire", "zrangestore", "del", "zrangestore", "del", "zrangestore"])
    }

    @Test func smallerCommands_rankCountRemoveRange() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a", "2", "b", "2", "c", "4", "d")
        #expect(h.run("ZRANK", "z", "c") == .integer(2))
        #expect(h.run("ZREVRANK", "z", "c") == .integer(1))
        #expect(h.run("ZRANK", "z", "nope") == .null)
        #expect(h.run("ZRANK", "missing", "a") == .null)
        #expect(h.run("ZCOUNT", "z", "(1", "2") == .integer(2))
        #expect(h.run("ZCOUNT", "z", "-inf", "+inf") == .integer(4))
        #expect(h.run("ZCOUNT", "z", "x", "1") == .error("ERR min or max is not a float"))
        #expect(h.run("ZREMRANGEBYSCORE", "z", "2", "(4") == .integer(2))
        #expect(h.run("ZRANGE", "z", "0", "-1") == members("a", "d"))
        #expect(h.run("ZREMRANGEBYSCORE", "z", "-inf", "+inf") == .integer(2))
        #expect(h.run("EXISTS", "z") == .integer(0))
        #expect(h.events.suffix(3).map(\.name) == ["zremrangebyscore", "zremrangebyscore", "del"])
    }

    @Test func keyCommands_expireRenameDelScanType() {
        var h = Harness()
        h.run("ZADD", "z", "1", "a")
        #expect(h.run("EXPIRE", "z", "10") == .integer(1))
        #expect(h.run("ZADD", "z", "2", "b") == .integer(1))
        #expect(h.run("TTL", "z") == .integer(10), "ZADD keeps the expiry")
        #expect(h.run("RENAME", "z", "y") == .ok)
        #expect(h.run("ZRANGE", "y", "0", "-1", "WITHSCORES") == scored(("a", 1), ("b", 2)))
        #expect(h.run("TTL", "y") == .integer(10))
        h.run("SADD", "s", "m")
        #expect(h.run("SCAN", "0", "TYPE", "zset") == .array([bulk("0"), .array([bulk("y")])]))
        h.now += 11_000
        #expect(h.run("ZCARD", "y") == .integer(0))
        #expect(h.run("EXISTS", "y") == .integer(0))
        #expect(h.run("ZADD", "y", "3", "c") == .integer(1), "a write to an expired key starts a new one")
        #expect(h.run("ZRANGE", "y", "0", "-1") == members("c"))
        #expect(h.run("DEL", "y") == .integer(1))
        #expect(h.run("TYPE", "y") == .simpleString("none"))
    }

    @Test func remoteMerge_keepsTheIndexTheRangesRead() throws {
        var seoul = Harness(), tokyo = Harness()
        tokyo.keyspace = Keyspace(configuration: KeyspaceConfiguration(site: SiteID(2)))
        seoul.run("ZADD", "z", "1", "a", "2", "b", "3", "c")
        for delta in seoul.deltas { _ = tokyo.keyspace.merge(delta, now: tokyo.now) }
        let shipped = seoul.deltas.count
        tokyo.now += 5
        seoul.run("ZADD", "z", "10", "a")
        tokyo.run("ZADD", "z", "0", "c")
        tokyo.run("ZREM", "z", "a")
        for delta in seoul.deltas[shipped...] { _ = tokyo.keyspace.merge(delta, now: tokyo.now) }
        for delta in tokyo.deltas { _ = seoul.keyspace.merge(delta, now: seoul.now) }
        let expected = scored(("c", 0), ("b", 2), ("a", 10))
        #expect(seoul.run("ZRANGE", "z", "0", "-1", "WITHSCORES") == expected)
        #expect(tokyo.run("ZRANGE", "z", "0", "-1", "WITHSCORES") == expected)
        #expect(seoul.run("ZRANGEBYSCORE", "z", "(0", "+inf") == members("b", "a"))
        let state = try #require(seoul.keyspace.state(of: Array("z".utf8)))
        #expect(KeyState(context: state.context, deletes: state.deletes, elements: state.elements).sortedIndex == state.sortedIndex)
        #expect(state == tokyo.keyspace.state(of: Array("z".utf8)))
    }
}
