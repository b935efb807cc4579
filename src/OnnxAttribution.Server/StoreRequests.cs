namespace OnnxAttribution.Server;

/// <summary>What every endpoint on a store does around its work: find the store, lease its current version, bound the time.</summary>
internal static class StoreRequests
{
    /// <summary>
    /// Runs <paramref name="handle"/> on the version of store <paramref name="name"/> current now, held until it has answered
    /// (<see cref="StoreSlot"/>): a request starts and finishes on one version, whatever the watcher swaps in meanwhile.
    /// </summary>
    /// <exception cref="HttpProblem">404: no store of that name (the message lists the stores).</exception>
    public static async Task<IResult> Leased(Dictionary<string, StoreSlot> stores, string name, Func<ServedStore, Task<IResult>> handle)
    {
        var slot = stores.TryGetValue(name, out var found)
            ? found
            : throw new HttpProblem(StatusCodes.Status404NotFound, $"no store named '{name}'; stores: {string.Join(", ", stores.Keys)}");
        using var lease = slot.Acquire();
        return await handle(lease.Store).ConfigureAwait(false);
    }

    /// <summary>Runs a request's work under --request-timeout: 504 naming the store and the option when the time runs out.</summary>
    public static async Task<IResult> WithTimeout(ServedStore store, HttpContext context, ServerLimits limits, Func<CancellationToken, Task<IResult>> work)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(limits.RequestTimeout);
        try
        {
            return await work(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            throw new HttpProblem(StatusCodes.Status504GatewayTimeout,
                $"store '{store.Name}': no answer within {limits.RequestTimeout.TotalSeconds:0.###} s (--request-timeout); its work was cancelled. " +
                "Send fewer queries, seeds or steps", null, e);
        }
    }
}
