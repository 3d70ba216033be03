// The examples' IDX reader (examples/idx.c): gzip and plain files, and every way a file can be
// wrong giving a message that names the file and the fault.
#include <gtest/gtest.h>
#include <zlib.h>

#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kb_test_util.h"

extern "C" {
#include "idx.h"
}

namespace {

std::string tmp_path(const char *name) {
    return std::string(::testing::TempDir()) + "kb_idx_" + std::to_string(::getpid()) + "_" + name;
}

// An IDX image: magic (0, 0, type, rank), big-endian dims, then the bytes.
std::vector<unsigned char> idx_bytes(unsigned char type, const std::vector<uint32_t> &dims,
                                     const std::vector<unsigned char> &data) {
    std::vector<unsigned char> b = {0, 0, type, (unsigned char)dims.size()};
    for (uint32_t d : dims)
        for (int s = 24; s >= 0; s -= 8) b.push_back((unsigned char)(d >> s));
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

void write_gz(const std::string &path, const std::vector<unsigned char> &b) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, b.data(), (unsigned)b.size()), (int)b.size());
    ASSERT_EQ(gzclose(f), Z_OK);
}

void write_plain(const std::string &path, const std::vector<unsigned char> &b) {
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fwrite(b.data(), 1, b.size(), f), b.size());
    ASSERT_EQ(fclose(f), 0);
}

std::vector<unsigned char> random_bytes(size_t n) {
    std::mt19937_64 rng(kbt::test_seed());
    std::vector<unsigned char> v(n);
    for (auto &x : v) x = (unsigned char)(rng() & 0xff);
    return v;
}

// Loads a file expected to be wrong: -1, an empty array, and a message with the path and `what`.
void expect_error(const std::string &path, int want_rank, const std::string &what) {
    idx_array a;
    char err[512] = "";
    EXPECT_EQ(idx_load(path.c_str(), want_rank, &a, err, sizeof err), -1);
    EXPECT_EQ(a.data, nullptr);
    EXPECT_EQ(a.size, 0);
    EXPECT_NE(std::string(err).find(path), std::string::npos) << err;
    EXPECT_NE(std::string(err).find(what), std::string::npos) << "message: " << err << "\nexpected: " << what;
}

TEST(Idx, ReadsGzipAndPlainFiles) {
    std::vector<unsigned char> data = random_bytes(5 * 7 * 3);
    auto bytes = idx_bytes(0x08, {5, 7, 3}, data);
    for (int gz = 0; gz < 2; ++gz) {
        std::string p = tmp_path(gz ? "good.gz" : "good");
        if (gz) write_gz(p, bytes);
        else write_plain(p, bytes);
        idx_array a;
        char err[512] = "";
        ASSERT_EQ(idx_load(p.c_str(), 3, &a, err, sizeof err), 0) << err;
        EXPECT_EQ(a.rank, 3);
        EXPECT_EQ(a.dims[0], 5);
        EXPECT_EQ(a.dims[1], 7);
        EXPECT_EQ(a.dims[2], 3);
        ASSERT_EQ(a.size, (int64_t)data.size());
        EXPECT_EQ(std::vector<unsigned char>(a.data, a.data + a.size), data);
        idx_free(&a);
        EXPECT_EQ(a.data, nullptr);
        // want_rank 0 takes any rank
        ASSERT_EQ(idx_load(p.c_str(), 0, &a, err, sizeof err), 0) << err;
        idx_free(&a);
        std::remove(p.c_str());
    }
}

TEST(Idx, MissingFile) { expect_error(tmp_path("does_not_exist.gz"), 1, "cannot open"); }

TEST(Idx, TruncatedData) {
    auto bytes = idx_bytes(0x08, {10, 4}, random_bytes(40));
    bytes.resize(bytes.size() - 7);
    std::string p = tmp_path("trunc.gz");
    write_gz(p, bytes);
    expect_error(p, 2, "truncated");
    std::remove(p.c_str());
}

TEST(Idx, TruncatedHeader) {
    std::string p = tmp_path("head.gz");
    write_gz(p, {0, 0, 8});
    expect_error(p, 0, "truncated");
    std::remove(p.c_str());
}

TEST(Idx, NotIdx) {
    std::string p = tmp_path("text");
    std::string text = "hello, this is not an IDX file\n";
    write_plain(p, std::vector<unsigned char>(text.begin(), text.end()));
    expect_error(p, 1, "not an IDX file");
    std::remove(p.c_str());
}

TEST(Idx, WrongTypeRankAndSize) {
    std::string p = tmp_path("bad.gz");
    write_gz(p, idx_bytes(0x0D, {4}, random_bytes(16))); // float32 elements
    expect_error(p, 1, "element type 0x0d");
    write_gz(p, idx_bytes(0x08, {4, 2}, random_bytes(8)));
    expect_error(p, 3, "2 dimensions, expected 3");
    write_gz(p, idx_bytes(0x08, {4}, random_bytes(9))); // one byte more than announced
    expect_error(p, 1, "extra bytes");
    write_gz(p, idx_bytes(0x08, {4, 0}, {}));
    expect_error(p, 2, "implausible dimension 1");
    std::remove(p.c_str());
}

TEST(Idx, CorruptCompressedStream) {
    // A valid gzip file with bytes flipped in the middle of its deflate stream: zlib reports a
    // data or CRC error, or the stream ends short; never a crash or a silent success.
    std::string p = tmp_path("corrupt.gz");
    write_gz(p, idx_bytes(0x08, {64, 64}, random_bytes(64 * 64)));
    FILE *f = fopen(p.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ASSERT_GT(n, 64);
    for (long at = n / 3; at < n / 3 + 16; ++at) {
        ASSERT_EQ(fseek(f, at, SEEK_SET), 0);
        fputc(0x5a ^ (int)at, f);
    }
    ASSERT_EQ(fclose(f), 0);
    idx_array a;
    char err[512] = "";
    EXPECT_EQ(idx_load(p.c_str(), 2, &a, err, sizeof err), -1);
    EXPECT_EQ(a.data, nullptr);
    EXPECT_NE(std::string(err).find(p), std::string::npos) << err;
    std::remove(p.c_str());
}

} // namespace
