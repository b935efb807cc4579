using OnnxAttribution.Edge;

return EdgeApp.Run(args, Console.Out, Console.Error);
