// Tier profiles, links and topologies (edgeforge/tiers.h): the built-ins, a file that
// overrides them, transmission arithmetic, and every malformed topology named in one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "edgeforge/error.h"
#include "edgeforge/tiers.h"
#include "../common/test_util.h"

using namespace edgeforge;

namespace {

std::string error_of(const std::string& toml) {
  try {
    parse_topology(toml, "t.toml");
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
    return m;
  }
  ADD_FAILURE() << "accepted:\n" << toml;
  return "";
}

const char* kTwoTiers = R"(
name = "lab"
[[tier]]
name = "mobile"
speed = 0.3
[[tier]]
name = "edge"
[[link]]
from = "mobile"
to = "edge"
bandwidth_mbps = 100
rtt_ms = 4
)";

}  // namespace

TEST(Tiers, BuiltInsFollowTheStudy) {
  const Topology t = default_topology();
  ASSERT_EQ(t.tiers.size(), 3u);
  EXPECT_EQ(t.tier("mobile").cores, 4);
  EXPECT_EQ(t.tier("edge").memory_gb, 16.0);
  EXPECT_EQ(t.tier("cloud").cores, 16);
  ASSERT_EQ(t.links.size(), 2u);
  EXPECT_EQ(t.links[0].bandwidth_mbps, 200.0);
  EXPECT_EQ(t.links[1].bandwidth_mbps, 1.0);
  EXPECT_THROW(builtin_tier("fog"), Error);
  EXPECT_THROW(t.tier("fog"), Error);
}

TEST(Tiers, TransmissionIsHalfTheRoundTripPlusBytesOverBandwidth) {
  Link l{"a", "b", 1.0, 40.0};
  // 1 Mbit/s moves 125,000 bytes a second: 125,000 bytes take 1000 ms, plus 20 ms.
  EXPECT_DOUBLE_EQ(l.one_way_ms(125000), 1020.0);
  EXPECT_DOUBLE_EQ(l.one_way_ms(0), 20.0);
  Link fast{"a", "b", 200.0, 0.0};
  EXPECT_DOUBLE_EQ(fast.one_way_ms(150528), 150528 * 8.0 / 200000.0);  // a 224x224 RGB frame
}

TEST(Tiers, AFileOverridesBuiltInsAndDefinesItsOwnTiers) {
  const Topology t = parse_topology(kTwoTiers, "t.toml");
  EXPECT_EQ(t.name, "lab");
  ASSERT_EQ(t.tiers.size(), 2u);
  EXPECT_DOUBLE_EQ(t.tier("mobile").speed, 0.3);
  EXPECT_EQ(t.tier("mobile").cores, 4) << "the built-in fills what the file does not give";
  EXPECT_DOUBLE_EQ(t.links[0].rtt_ms, 4.0);
  const std::string path = (std::filesystem::temp_directory_path() / "edgeforge_topology.toml").string();
  std::ofstream(path) << kTwoTiers << "[[tier]]\nname = \"board\"\ncores = 2\nmemory_gb = 1\nspeed = 0.1\n"
                      << "[[link]]\nfrom = \"edge\"\nto = \"board\"\nbandwidth_mbps = 10\n";
  const Topology f = load_topology(path);
  EXPECT_EQ(f.tiers.back().name, "board");
  EXPECT_DOUBLE_EQ(f.links.back().bandwidth_mbps, 10.0);
  std::filesystem::remove(path);
}

TEST(Tiers, ATierNamesItsRemoteAgent) {
  const Topology t = parse_topology(
      "[[tier]]\nname = \"mobile\"\nagent = \"192.0.2.7:7000\"\ntoken_file = \"token.txt\"\n"
      "tls_ca = \"/etc/ca.pem\"\n",
      "/lab/t.toml");
  EXPECT_EQ(t.tiers[0].agent, "192.0.2.7:7000");
  EXPECT_EQ(t.tiers[0].token_file, "/lab/token.txt");  // relative to the topology file
  EXPECT_EQ(t.tiers[0].tls_ca, "/etc/ca.pem");
}

TEST(Tiers, MalformedTopologiesAreNamedInOneLine) {
  EXPECT_NE(error_of("[[tier]\nname = 1").find("t.toml:1"), std::string::npos);
  // Found by fuzz_settings: toml++ 3.3 asserts on a control character in a table header.
  EXPECT_NE(error_of(std::string("k = 4\n[\x02k = 4\n")).find("t.toml:2: control character U+0002"),
            std::string::npos);
  EXPECT_NE(error_of(std::string("name = \"a\x7f\"\n")).find("control character U+007F"), std::string::npos);
  // Found by fuzz_settings: toml++ 3.3 reaches __builtin_unreachable() when it asks whether a
  // character of U+00A1-U+0499, U+2C5E-U+3057 or U+FB26-U+FEFE is whitespace, which it may do
  // on a malformed line even for what looks like a string's characters. Those are refused
  // anywhere, with the \u escape that writes them.
  EXPECT_NE(error_of("caf\xC3\xA9 = 1\n").find("t.toml:1: character U+00E9 cannot be read safely"),
            std::string::npos);
  EXPECT_NE(error_of("# caf\xC3\xA9\nx = 1\n").find("U+00E9"), std::string::npos);
  EXPECT_NE(error_of("a = 1\nname = \"caf\xC3\xA9\"\n").find("t.toml:2: character U+00E9"),
            std::string::npos);
  EXPECT_NE(error_of("els =2=\"C\xEF\xBB\xBB%k' 3inx").find("write it as \\uFEFB in a double-quoted string"),
            std::string::npos);
  EXPECT_NE(error_of("els =5\"CCCC\xEF\xBA\xBF\n").find("U+FEBF"), std::string::npos);
  // Other non-ASCII characters (here U+4E2D) are refused outside strings and comments, where
  // TOML allows none ...
  EXPECT_NE(error_of("\xE4\xB8\xAD = 1\n").find("t.toml:1: a non-ASCII character outside a string"),
            std::string::npos);
  EXPECT_NE(error_of("# \xE4\xB8\xAD\n\xE4\xB8\xADtron = 1\n").find("t.toml:2: a non-ASCII"), std::string::npos);
  // ... or right after a backslash in a string, where toml++ tests it for whitespace too ...
  EXPECT_NE(error_of("a = \"\"\"x\\  \n  \xE4\xB8\xAD\"\"\"\n").find("t.toml:2: a non-ASCII character right after a backslash"),
            std::string::npos);
  EXPECT_NE(error_of("a = \"\\\xE4\xB8\xAD\"\n").find("right after a backslash"), std::string::npos);
  EXPECT_NE(error_of("els =5\"CCCC\xE4\xB8\xAD\n").find("t.toml:1: a non-ASCII"), std::string::npos);
  // ... and read as they are in strings and comments, and through escapes.
  const std::string named = "name = \"caf\\u00E9 \\\" \xE4\xB8\xAD\" # \xE4\xB8\xAD\n"
                            "[[tier]]\nname = '''m\xE4\xB8\xAD'''\n";
  EXPECT_NE(error_of(named).find("name 'm\xE4\xB8\xAD' must be 1 to 64 letters"), std::string::npos)
      << error_of(named);
  EXPECT_NE(error_of("[[tier]]\nname = \"m\\u00E9\"\n").find("name 'm\xC3\xA9' must be 1 to 64"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"\"\"a\nb\"\"\"\n").find("t.toml: tier 1: name '...' must be"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"edge-1\"\n").find("a '-' would read as a split"), std::string::npos);
  EXPECT_NE(error_of("name = \"x\"").find("no [[tier]]"), std::string::npos);
  const std::string two = "[[tier]]\nname = \"mobile\"\n[[tier]]\nname = \"edge\"\n";
  EXPECT_NE(error_of(two).find("no link from 'mobile' to 'edge'"), std::string::npos);
  EXPECT_NE(error_of(two + "[[link]]\nfrom = \"mobile\"\nto = \"edge\"\nbandwidth_mbps = 0\n")
                .find("bandwidth_mbps 0 must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of(two + "[[link]]\nfrom = \"mobile\"\nto = \"edge\"\nbandwidth_mbps = -5\n")
                .find("must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of(two + "[[link]]\nfrom = \"edge\"\nto = \"mobile\"\nbandwidth_mbps = 5\n")
                .find("neighbouring"),
            std::string::npos);
  EXPECT_NE(error_of(two + "[[link]]\nfrom = \"mobile\"\nto = \"edge\"\nbandwidth_mbps = 5\nloss = 1\n")
                .find("loss"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"board\"\ncores = 2\n").find("'memory_gb' is missing"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"mobile\"\ncores = 0\n").find("cores"), std::string::npos);
  // Numbers that used to wrap or reach the simulation as inf or -nan (issue 22).
  const std::string tier = "[[tier]]\nname = \"mobile\"\n";
  EXPECT_NE(error_of(tier + "cores = 1e30\n").find("'cores' 1e+30 must be a whole number in 1..65536"), std::string::npos);
  EXPECT_NE(error_of(tier + "cores = inf\n").find("'cores' inf must be a whole number"), std::string::npos);
  EXPECT_NE(error_of(tier + "speed = 1e-300\n").find("speed 1e-300 must be >= 1e-06"), std::string::npos);
  EXPECT_NE(error_of(tier + "reference_ms = inf\n").find("'reference_ms' inf must be >= 0 and <= 1e+12"), std::string::npos);
  const std::string link = two + "[[link]]\nfrom = \"mobile\"\nto = \"edge\"\n";
  EXPECT_NE(error_of(link + "bandwidth_mbps = 5\nrtt_ms = inf\n").find("'rtt_ms' inf must be >= 0"), std::string::npos);
  EXPECT_NE(error_of(link + "bandwidth_mbps = 5\njitter_ms = 1e300\n").find("'jitter_ms' 1e+300 must be >= 0 and <= 1e+06"),
            std::string::npos);
  EXPECT_NE(error_of(link + "bandwidth_mbps = 1e-300\n").find("bandwidth_mbps 1e-300 must be > 0 (at least 0.001)"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"mobile\"\nspeed = \"fast\"\n").find("must be a number"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"mobile\"\nagent = \"nohost\"\n").find("is not HOST:PORT"),
            std::string::npos);
  try {
    load_topology("/nonexistent/t.toml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/t.toml"), std::string::npos);
  }
}

TEST(Tiers, AModelThatDoesNotFitATierIsRefused) {
  const TierProfile mobile = builtin_tier("mobile");
  EXPECT_NO_THROW(check_fits(mobile, 3'000'000'000, "big"));
  try {
    check_fits(mobile, 5'000'000'000, "huge");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tier 'mobile'"), std::string::npos) << e.what();
  }
}

TEST(Tiers, ATopologyIsARegularFileOfBoundedSize) {
  // Issue 22: a topology of /dev/zero grew memory until bad_alloc; a FIFO hung.
  EXPECT_NE(edgeforge::test_util::error_of([] { load_topology("/dev/zero"); })
                .find("topology /dev/zero: not a regular file"),
            std::string::npos);
  EXPECT_NE(edgeforge::test_util::error_of([] { load_topology("/nowhere/t.toml"); })
                .find("file not found or not readable"),
            std::string::npos);
}
