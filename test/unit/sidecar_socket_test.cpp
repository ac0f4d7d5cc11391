// The sidecar's defences against clients that hold its socket: frame assembly from dribbled
// bytes (FrameReader), the log throttle for dropped connections, the descriptor budget, and
// the two settings that bound waiting connections.
#include "common/error.hpp"
#include "common/wire.hpp"
#include "sidecar/config.hpp"
#include "sidecar/server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <string>

namespace {

using pga::SecureBytes;
using pga::sidecar::effective_max_pending;
using pga::sidecar::FrameReader;
using pga::sidecar::LogThrottle;
using State = FrameReader::State;
using namespace std::chrono_literals;

constexpr const char *kTicket = "pgat1.AAAAAQ-_frame_reader_.c2lnbmF0dXJl";

SecureBytes sample_frame() {
    pga::SidecarRequest r;
    r.request_id = "req-dribble";
    r.operation = "account";
    r.ticket = pga::secure_copy(kTicket);
    return pga::encode_request(r);
}

// Feeds `data` in chunks of `chunk` bytes; returns the final state.
State feed(FrameReader &f, const std::uint8_t *data, std::size_t len, std::size_t chunk) {
    std::size_t off = 0;
    while (off < len && f.state() == State::NeedMore) {
        const std::size_t n = std::min({chunk, len - off, f.space_len()});
        EXPECT_GT(n, 0u);
        std::memcpy(f.space(), data + off, n);
        f.commit(n);
        off += n;
    }
    return f.state();
}

TEST(FrameReader, AssemblesAFrameFedOneByteAtATime) {
    const SecureBytes frame = sample_frame();
    for (std::size_t chunk :
         {std::size_t(1), std::size_t(3), std::size_t(4), std::size_t(7), frame.size()}) {
        FrameReader f;
        std::size_t steps = 0;
        for (std::size_t off = 0; off < frame.size(); ++steps) {
            ASSERT_EQ(f.state(), State::NeedMore) << "chunk " << chunk << " at " << off;
            const std::size_t n = std::min({chunk, frame.size() - off, f.space_len()});
            std::memcpy(f.space(), frame.data() + off, n);
            f.commit(n);
            off += n;
            EXPECT_EQ(f.bytes_received(), off);
        }
        ASSERT_EQ(f.state(), State::Complete) << "chunk " << chunk;
        EXPECT_EQ(f.space_len(), 0u);
        EXPECT_EQ(f.space(), nullptr);
        const SecureBytes payload = f.take_payload();
        ASSERT_EQ(payload.size(), frame.size() - pga::kFramePrefixLen);
        const auto req = pga::decode_request(payload.data(), payload.size());
        EXPECT_EQ(req.request_id, "req-dribble");
        EXPECT_EQ(pga::as_view(req.ticket), kTicket);
        if (chunk == 1) {
            EXPECT_EQ(steps, frame.size());
        }
    }
}

TEST(FrameReader, NeverAsksForABytePastTheFrame) {
    const SecureBytes frame = sample_frame();
    FrameReader f;
    // The prefix is asked for alone, then exactly the payload.
    EXPECT_EQ(f.space_len(), pga::kFramePrefixLen);
    std::memcpy(f.space(), frame.data(), pga::kFramePrefixLen);
    EXPECT_EQ(f.commit(pga::kFramePrefixLen), State::NeedMore);
    EXPECT_EQ(f.space_len(), frame.size() - pga::kFramePrefixLen);
    // Committing more than was asked for is refused rather than overrunning the buffer.
    FrameReader g;
    EXPECT_EQ(g.commit(pga::kFramePrefixLen + 1), State::Invalid);
    EXPECT_FALSE(g.error().empty());
    // Zero bytes change nothing.
    FrameReader h;
    EXPECT_EQ(h.commit(0), State::NeedMore);
    EXPECT_EQ(h.bytes_received(), 0u);
}

TEST(FrameReader, RefusesAZeroOrOversizedLengthAsSoonAsThePrefixIsIn) {
    struct Case {
        std::uint8_t prefix[4];
        bool ok;
    };
    const std::uint32_t max = pga::kMaxRequestPayload;
    const Case cases[] = {
        {{0, 0, 0, 0}, false},
        {{0xff, 0xff, 0xff, 0xff}, false},
        {{std::uint8_t(max >> 24), std::uint8_t(max >> 16), std::uint8_t(max >> 8),
          std::uint8_t(max)},
         true},
        {{std::uint8_t((max + 1) >> 24), std::uint8_t((max + 1) >> 16),
          std::uint8_t((max + 1) >> 8), std::uint8_t(max + 1)},
         false},
    };
    for (const auto &c : cases) {
        FrameReader f;
        // Dribbled: the verdict comes with the fourth byte, not before.
        for (int i = 0; i < 3; ++i) {
            *f.space() = c.prefix[i];
            EXPECT_EQ(f.commit(1), State::NeedMore);
        }
        *f.space() = c.prefix[3];
        const State s = f.commit(1);
        if (c.ok) {
            EXPECT_EQ(s, State::NeedMore);
            EXPECT_EQ(f.space_len(), max);
        } else {
            EXPECT_EQ(s, State::Invalid);
            EXPECT_NE(f.error().find("wire"), std::string::npos) << f.error();
            EXPECT_EQ(f.space_len(), 0u);
            EXPECT_EQ(f.commit(1), State::Invalid);  // stays refused
        }
    }
}

TEST(FrameReader, ASmallerCapIsHonoured) {
    const SecureBytes frame = sample_frame();
    FrameReader f(16);
    EXPECT_EQ(feed(f, frame.data(), frame.size(), 1), State::Invalid);
    EXPECT_EQ(f.bytes_received(), pga::kFramePrefixLen);
}

TEST(LogThrottle, OneLineAnIntervalAndTheRestCounted) {
    LogThrottle t(1000ms);
    const auto t0 = LogThrottle::Clock::time_point{} + 1h;
    std::uint64_t suppressed = 99;
    EXPECT_EQ(t.next_flush(), LogThrottle::Clock::time_point::max());
    ASSERT_TRUE(t.allow(t0, suppressed));
    EXPECT_EQ(suppressed, 0u);
    // 100 more events within the second: none logged, all counted.
    for (int i = 0; i < 100; ++i)
        EXPECT_FALSE(t.allow(t0 + std::chrono::milliseconds(i), suppressed));
    EXPECT_EQ(t.next_flush(), t0 + 1000ms);
    EXPECT_FALSE(t.flush(t0 + 999ms, suppressed));
    // The next event after the interval is logged and reports the 100.
    ASSERT_TRUE(t.allow(t0 + 1000ms, suppressed));
    EXPECT_EQ(suppressed, 100u);
    EXPECT_EQ(t.next_flush(), LogThrottle::Clock::time_point::max());
    // Events followed by silence are reported by flush once the interval has passed.
    EXPECT_FALSE(t.allow(t0 + 1500ms, suppressed));
    EXPECT_FALSE(t.allow(t0 + 1600ms, suppressed));
    EXPECT_FALSE(t.flush(t0 + 1999ms, suppressed));
    ASSERT_TRUE(t.flush(t0 + 2000ms, suppressed));
    EXPECT_EQ(suppressed, 2u);
    EXPECT_FALSE(t.flush(t0 + 5000ms, suppressed));  // nothing left to report
    // A flush counts as a line: the next event within the interval is held back.
    EXPECT_FALSE(t.allow(t0 + 2500ms, suppressed));
    ASSERT_TRUE(t.allow(t0 + 3000ms, suppressed));
    EXPECT_EQ(suppressed, 1u);
}

TEST(LogThrottle, AtMostOneLinePerIntervalOverAMinuteOfDrops) {
    LogThrottle t(1000ms);
    const auto t0 = LogThrottle::Clock::time_point{} + 1h;
    std::uint64_t lines = 0, reported = 0, s = 0;
    const int events = 60000;  // one a millisecond for a minute
    for (int i = 0; i < events; ++i) {
        const auto now = t0 + std::chrono::milliseconds(i);
        if (t.allow(now, s)) {
            ++lines;
            reported += 1 + s;
        }
    }
    if (t.flush(t0 + 1h, s)) reported += s;
    EXPECT_EQ(lines, 60u);
    EXPECT_EQ(reported, std::uint64_t(events));  // nothing lost from the counts
}

TEST(FdBudget, TheConfiguredBoundWhenTheLimitAllowsIt) {
    // Defaults (256 pending, 256 queued, 8 workers, 4 libpq) under a 1024 soft limit.
    EXPECT_EQ(effective_max_pending(256, 1024, 256, 8, 4), 256u);
    EXPECT_EQ(effective_max_pending(256, std::numeric_limits<std::size_t>::max(), 256, 8, 4), 256u);
}

TEST(FdBudget, LoweredSoWaitingQueuedAndServedConnectionsFitTheLimit) {
    const std::size_t own = 16 + 4 + 4 * 8;  // stdio, sockets, log, libpq, curl
    for (std::size_t limit : {std::size_t(400), std::size_t(512), std::size_t(700)}) {
        const std::size_t p = effective_max_pending(100000, limit, 256, 8, 4);
        // What the daemon may hold at once stays within the limit.
        EXPECT_LE(p + 256 + 8 + own, limit) << limit;
        EXPECT_EQ(p, limit - own - 256 - 8) << limit;
    }
    // A limit too small for the queue itself still leaves one slot (accept must make
    // progress; running out of descriptors then drops the oldest waiting connection).
    EXPECT_EQ(effective_max_pending(256, 300, 256, 8, 4), 1u);
    EXPECT_EQ(effective_max_pending(256, 64, 256, 8, 4), 1u);
    EXPECT_EQ(effective_max_pending(0, 1024, 1, 1, 1), 1u);
}

TEST(SidecarSocketConfig, DefaultsAndRanges) {
    const std::string minimal = "socket_path = /run/alpaca/sidecar.sock\n";
    const auto c = pga::sidecar::parse_config(minimal, "f");
    EXPECT_EQ(c.max_pending_connections, 256u);
    EXPECT_EQ(c.read_timeout_ms, 2000);
    const auto d = pga::sidecar::parse_config(
        minimal + "max_pending_connections = 17\nread_timeout_ms = 100\n", "f");
    EXPECT_EQ(d.max_pending_connections, 17u);
    EXPECT_EQ(d.read_timeout_ms, 100);
    for (const std::string bad : {"max_pending_connections = 0", "max_pending_connections = 100001",
                                  "max_pending_connections = -1", "max_pending_connections = x"}) {
        try {
            (void)pga::sidecar::parse_config(minimal + bad + "\n", "f");
            ADD_FAILURE() << "accepted " << bad;
        } catch (const pga::Error &e) {
            EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
            EXPECT_NE(std::string(e.what()).find("f:2: max_pending_connections"), std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
