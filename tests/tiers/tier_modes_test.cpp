// The tier-mode table: every mode bench, study and the report accept, what each says of itself.
#include <gtest/gtest.h>

#include "edgeforge/agent.h"
#include "edgeforge/emulate.h"
#include "edgeforge/error.h"
#include "edgeforge/tier_modes.h"
#include "edgeforge/tiers.h"
#include "../common/test_util.h"

namespace edgeforge {
namespace {

TEST(TierModes, TheTableNamesEachModeAndWhatItCanDo) {
  EXPECT_EQ(tier_mode_names(), (std::vector<std::string>{"simulated", "emulated", "remote"}));
  const TierMode& sim = tier_mode("simulated");
  EXPECT_FALSE(sim.real);
  EXPECT_TRUE(sim.reshapable);
  EXPECT_EQ(sim.unavailable(), "");
  EXPECT_EQ(sim.agents, nullptr);
  EXPECT_TRUE(tier_mode("emulated").real);
  EXPECT_TRUE(tier_mode("emulated").reshapable);
  EXPECT_FALSE(tier_mode("remote").reshapable);
  EXPECT_EQ(tier_mode("emulated").unavailable(), emulation_unavailable());
  const std::string e = test_util::error_of([] { tier_mode("fast"); });
  EXPECT_NE(e.find("'fast'"), std::string::npos) << e;
  EXPECT_NE(e.find("simulated, emulated, remote"), std::string::npos) << e;
  std::unique_ptr<Emulation> none;
  EXPECT_NE(test_util::error_of([&] { tier_mode_agents(sim, default_topology(), EmulationOptions{}, none); })
                .find("without agents"),
            std::string::npos);
  // A remote topology without agent addresses is named by the remote mode's agents.
  EXPECT_NE(test_util::error_of([&] { tier_mode_agents(tier_mode("remote"), default_topology(), EmulationOptions{}, none); })
                .find("no agent address"),
            std::string::npos);
}

}  // namespace
}  // namespace edgeforge
