/// How fast the site's placement work goes, for an operator watching a scale-out or a drain:
/// fed the moves under way and the moves left (`ClusterMap.movesInFlight`, `movesLeft`) each
/// time the map changes, it counts the moves that finished and estimates when the rest will.
///
/// The estimate is the work left divided by the rate of the last minute of this run of work
/// (a run starts when work appears on a balanced site and ends when none is left): copying a
/// partition costs what its sessions weigh, so the recent rate says more than a fixed guess.
/// Pure: time comes in as `now`.
public struct RebalanceProgress: Sendable {
    public struct Figures: Hashable, Sendable, Codable {
        public var moving: Int
        public var left: Int
        /// Moves that finished in this run of work.
        public var movesFinished: Int
        /// When the work left should be done, from now; 0 when there is none, nil before a
        /// move has finished (no rate to go on yet).
        public var etaMilliseconds: UInt64?
    }

    static let windowMilliseconds: UInt64 = 60_000

    var runStartedAt: UInt64?
    var moving = 0
    var left = 0
    var finishedInRun = 0
    /// (when, how many) for the moves that finished within the window.
    var finished: [(at: UInt64, count: Int)] = []

    public init() {}

    /// Whether the last observation found work under way or left.
    public var isMoving: Bool { moving + left > 0 }

    public mutating func observe(moving: Int, left: Int, now: UInt64) -> Figures {
        let total = moving + left
        if runStartedAt == nil {
            guard total > 0 else { return figures(now: now) }
            // A new run: what the last one finished is history.
            runStartedAt = now
            finished = []
            finishedInRun = 0
        } else if total < self.moving + self.left {
            let count = self.moving + self.left - total
            finished.append((now, count))
            finishedInRun += count
        }
        (self.moving, self.left) = (moving, left)
        finished.removeAll { now - $0.at > Self.windowMilliseconds }
        let figures = figures(now: now)
        if total == 0 { runStartedAt = nil }
        return figures
    }

    /// The figures of the last observation, the estimate as of `now`.
    public func figures(now: UInt64) -> Figures {
        var figures = Figures(moving: moving, left: left, movesFinished: finishedInRun, etaMilliseconds: nil)
        guard let runStartedAt, moving + left > 0 else {
            figures.etaMilliseconds = 0
            return figures
        }
        let count = finished.reduce(0) { $0 + $1.count }
        let since = max(runStartedAt, now > Self.windowMilliseconds ? now - Self.windowMilliseconds : 0)
        guard count > 0, now > since else { return figures }
        figures.etaMilliseconds = UInt64(moving + left) * (now - since) / UInt64(count)
        return figures
    }
}
