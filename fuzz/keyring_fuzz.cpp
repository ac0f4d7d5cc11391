// libFuzzer: key file parser. Any text either parses into a ring whose ids are unique and
// ascending with the highest as primary, or is refused with Error(ConfigFile) naming the file
// (and line). A refusal never repeats a key: a key is 44 characters of base64, and nothing in
// a message comes from the input but a key id (at most 10 digits).
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"
#include "fuzz/fuzz_invariants.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_base64_run(std::string_view s) {
    for (char c : s) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    try {
        const pga::KeyRing ring = pga::KeyRing::parse(text, "fuzz.keys");
        const auto ids = ring.ids();
        check(!ids.empty() && !ring.empty());
        for (std::size_t i = 1; i < ids.size(); ++i) check(ids[i - 1] < ids[i]);
        check(ring.primary_id() == ids.back() && ring.primary().id == ids.back());
        for (std::uint32_t id : ids) {
            const pga::KeyEntry *e = ring.find(id);
            check(e != nullptr && e->id == id && &ring.require(id) == e);
            check(e->ticket_key.size() == 32 && e->fingerprint_key.size() == 32);
            check(e->data_cipher != nullptr);
        }
        // Each key line needs at least "1 " and 44 characters of base64.
        check(ids.size() <= size / 46 + 1);
        if (ids.front() > 1) check(ring.find(ids.front() - 1) == nullptr);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::ConfigFile);
        pga_fuzz::check_error(e, 200);
        const std::string m = e.what();
        check(m.rfind("fuzz.keys:", 0) == 0);
        // No whitespace-separated input token of 12+ base64 characters (what a key looks like)
        // appears in the message: nothing in a message is a run of 12 such characters except
        // what came from the input.
        std::size_t i = 0, tokens = 0;
        while (i < text.size() && tokens < 64) {
            while (i < text.size() && is_space(text[i])) ++i;
            std::size_t j = i;
            while (j < text.size() && !is_space(text[j])) ++j;
            if (j - i >= 12 && is_base64_run(text.substr(i, j - i))) {
                check(m.find(text.substr(i, j - i)) == std::string::npos);
                ++tokens;
            }
            i = j;
        }
    }
    return 0;
}
