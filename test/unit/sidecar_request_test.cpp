// The sidecar's mapping from wire operations to Alpaca URLs.
#include "common/wire.hpp"
#include "sidecar/request_handler.hpp"

#include <gtest/gtest.h>

namespace {

using pga::sidecar::alpaca_path;
using pga::sidecar::alpaca_url;

TEST(SidecarRequest, EveryKnownOperationHasAnAlpacaPath) {
    for (const char *op : {"validate", "account", "positions", "orders", "clock"}) {
        ASSERT_TRUE(pga::is_known_operation(op)) << op;
        const std::string path = alpaca_path(op);
        EXPECT_EQ(path.rfind("/v2/", 0), 0u) << op;
    }
    EXPECT_EQ(alpaca_path("validate"), alpaca_path("account"));
    EXPECT_EQ(alpaca_path("orders"), "/v2/orders");
}

TEST(SidecarRequest, UnknownOperationHasNoPath) {
    EXPECT_EQ(alpaca_path("delete_everything"), "");
    EXPECT_EQ(alpaca_path(""), "");
    EXPECT_FALSE(pga::is_known_operation("delete_everything"));
}

TEST(SidecarRequest, UrlJoinsBasePathAndQueryInOrder) {
    EXPECT_EQ(alpaca_url("https://paper-api.alpaca.markets", "positions", {}),
              "https://paper-api.alpaca.markets/v2/positions");
    EXPECT_EQ(alpaca_url("https://127.0.0.1:8443", "orders",
                         {{"status", "all"}, {"limit", "500"}, {"nested", "true"}}),
              "https://127.0.0.1:8443/v2/orders?status=all&limit=500&nested=true");
}

}  // namespace
