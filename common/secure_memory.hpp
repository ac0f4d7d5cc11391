// Memory that holds secrets is wiped with OPENSSL_cleanse before it goes back to the heap.
// std::vector (unlike std::string) has no small-buffer optimisation, so every byte it ever
// held passes through the allocator and is wiped.
#pragma once
#include "cpp_only.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pga {

void secure_wipe(void *p, std::size_t n) noexcept;

template <typename T>
struct WipingAllocator {
    using value_type = T;
    WipingAllocator() noexcept = default;
    template <typename U>
    WipingAllocator(const WipingAllocator<U> &) noexcept {}
    T *allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
    void deallocate(T *p, std::size_t n) noexcept {
        secure_wipe(p, n * sizeof(T));
        std::allocator<T>().deallocate(p, n);
    }
    template <typename U>
    bool operator==(const WipingAllocator<U> &) const noexcept {
        return true;
    }
    template <typename U>
    bool operator!=(const WipingAllocator<U> &) const noexcept {
        return false;
    }
};

// Bytes that are wiped on release. Use for keys, plaintext secrets, tickets.
using SecureBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

inline SecureBytes secure_copy(std::string_view s) {
    return SecureBytes(reinterpret_cast<const std::uint8_t *>(s.data()),
                       reinterpret_cast<const std::uint8_t *>(s.data()) + s.size());
}
inline std::string_view as_view(const SecureBytes &b) {
    return std::string_view(reinterpret_cast<const char *>(b.data()), b.size());
}

}  // namespace pga
