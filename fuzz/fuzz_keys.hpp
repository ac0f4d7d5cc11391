// The fixed key ring the envelope and ticket fuzzers share: master keys bytes 0..31 (id 1) and
// 32..63 (id 7). The seeds in fuzz/corpus were made with these keys by an independent
// implementation, as were the cross-implementation vectors in test/unit.
#pragma once
#include "common/keyring.hpp"

namespace pga_fuzz {

inline const pga::KeyRing &ring() {
    static const pga::KeyRing r = pga::KeyRing::parse(
        "1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "7 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n",
        "fuzz.keys");
    return r;
}

}  // namespace pga_fuzz
