// The study's placement strategies (edgeforge/strategy.h): how a study deploys a model besides
// whole on one tier. The split itself is made at deployment (edgeforge/deploy.h), not here.
#include "edgeforge/strategy.h"

namespace edgeforge {

EF_REGISTER_PLACEMENT(partition,
                      PlacementStrategy{"partition",
                                        "The model split at the study's cut point, its first "
                                        "part on the request's tier and the rest on the next, "
                                        "on each split deployment.",
                                        PlacementRule::split, /*composable=*/true});

EF_REGISTER_PLACEMENT(auto_partition,
                      PlacementStrategy{"auto-partition",
                                        "The model where the placement estimate ranks first "
                                        "(one tier, or split at the best cut), as bench --at "
                                        "auto chooses.",
                                        PlacementRule::automatic, /*composable=*/false});

}  // namespace edgeforge
