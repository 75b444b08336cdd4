-- wrk script: cycle through the request paths listed (one a line) in $PATHS_FILE,
-- so every device's file is requested in turn instead of one file over and over.
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do
    paths[#paths + 1] = line
end
local i = 0
init = function(args)
    -- the threads start at different places in the list
    i = math.random(#paths)
end
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
