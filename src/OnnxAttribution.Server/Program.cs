using OnnxAttribution.Server;

// Parse, open the stores, serve: the work lives in Core.
return await ServerApp.RunAsync(args);
